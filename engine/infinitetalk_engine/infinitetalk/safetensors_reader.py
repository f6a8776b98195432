"""Read one tensor at a time from a `.safetensors` file with plain reads (no memory map).

Why not `safetensors.safe_open`: it memory-maps the file, and every page it touches stays in this process's
resident set until the file is closed, so reading a 9 GB shard tensor by tensor still shows ~9 GB of host RSS.
Reading each tensor with `pread` into its own buffer keeps host RAM at one tensor, and `posix_fadvise(DONTNEED)`
tells the kernel not to keep the file's pages cached on our behalf.

Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the data; offsets are
relative to the end of the header.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
MAX_HEADER_BYTES = 100 * 2**20


class SafetensorsReader:
    """`keys()`, `shape(key)`, `read(key)`; raises ValueError with the reason for a corrupt or truncated file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            size = os.fstat(self._fd).st_size
            raw = os.pread(self._fd, 8, 0)
            if len(raw) < 8:
                raise ValueError("shorter than a safetensors header")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"header length {header_len} does not fit the file ({size} bytes)")
            header = json.loads(os.pread(self._fd, header_len, 8))
            header.pop("__metadata__", None)
            self._data_start = 8 + header_len
            self._entries = {}
            for key, entry in header.items():
                begin, end = entry["data_offsets"]
                dtype = DTYPES[entry["dtype"]]
                shape = tuple(entry["shape"])
                if end - begin != math.prod(shape) * torch.tensor([], dtype=dtype).element_size():
                    raise ValueError(f"{key}: {entry['dtype']} {list(shape)} does not match its byte range")
                if self._data_start + end > size:
                    raise ValueError(
                        f"{key} ends at byte {self._data_start + end}, past the end of the file "
                        f"({size} bytes): truncated download?"
                    )
                self._entries[key] = (dtype, shape, begin, end)
        except BaseException:
            os.close(self._fd)
            raise

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._entries[key][1]

    def read(self, key: str) -> torch.Tensor:
        dtype, shape, begin, end = self._entries[key]
        buffer = torch.empty(end - begin, dtype=torch.uint8)
        view, offset, done = memoryview(buffer.numpy()), self._data_start + begin, 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise ValueError(f"{key}: unexpected end of file")
            done += got
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, offset, end - begin, os.POSIX_FADV_DONTNEED)
        return buffer.view(dtype).reshape(shape)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
