"""CMAF (fragmented MP4) pieces of the live stream: an init segment and one media segment per clip.

FFmpeg writes the init segment (`ftyp` + `moov` with the codecs' configuration). The media segments (`moof` + `mdat`)
are written here because FFmpeg's muxer only closes a fragment when the next one starts, and a clip's segment must
be readable as soon as the clip is finished. A media segment holds, per track, one `traf` with `tfhd`
(default-base-is-moof), `tfdt` (the absolute decode time, so segments can be fetched in any order) and `trun`
(each sample's duration, size, flags and composition offset). ISO/IEC 14496-12 and 23000-19 describe the boxes.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

# trun flags: data-offset, sample-duration, sample-size, sample-flags and sample-composition-time-offset present.
TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
SYNC_SAMPLE_FLAGS = 0x02000000  # depends on no other sample
OTHER_SAMPLE_FLAGS = 0x01010000  # depends on others, not a sync sample
INIT_MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+cmaf"


@dataclass(frozen=True)
class Sample:
    """One coded frame, its times in its track's timescale."""

    data: bytes
    decode_time: int
    duration: int
    composition_offset: int = 0  # presentation time - decode time
    sync: bool = True


@dataclass(frozen=True)
class TrackFragment:
    track_id: int
    samples: list[Sample]


@dataclass(frozen=True)
class Track:
    """A track of the init segment: its id and how many ticks make one second."""

    track_id: int
    timescale: int


# MARK: - init segment


def init_segment(
    video_template: bytes, video_size: tuple[int, int], fps: int, audio: av.audio.AudioStream | None
) -> bytes:
    """`ftyp` + `moov` for an H.264 track (its parameters read from `video_template`, a key frame in Annex B with
    SPS and PPS) and, if given, the track of `audio`, an open AAC encoder stream. The video track comes first."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4", options={"movflags": INIT_MOVFLAGS}) as muxer:
        width, height = video_size
        video = muxer.add_mux_stream("h264", rate=fps, width=width, height=height)
        video.time_base = Fraction(1, fps)
        if audio is not None:
            muxer.add_stream_from_template(audio, opaque=True)
        packet = av.Packet(video_template)
        packet.pts = packet.dts = 0
        packet.time_base = Fraction(1, fps)
        packet.is_keyframe = True
        packet.stream = video
        muxer.mux(packet)  # the header is written once the SPS/PPS are known
    data = buffer.getvalue()
    moov = next(box for box in boxes(data) if box[0] == "moov")
    return data[: moov[1] + moov[2]]


def tracks(init: bytes) -> dict[str, Track]:
    """The tracks of an init segment by handler type (`vide`, `soun`)."""
    found: dict[str, Track] = {}
    for trak in _children(_child(init, "moov"), "trak"):
        tkhd = _child(trak, "tkhd")
        track_id = struct.unpack(">I", tkhd[12:16] if tkhd[0] == 0 else tkhd[20:24])[0]
        mdhd = _child(trak, "mdia", "mdhd")
        timescale = struct.unpack(">I", mdhd[12:16] if mdhd[0] == 0 else mdhd[20:24])[0]
        handler = _child(trak, "mdia", "hdlr")[8:12].decode()
        found[handler] = Track(track_id, timescale)
    return found


# MARK: - media segment


def media_segment(sequence: int, fragments: list[TrackFragment]) -> bytes:
    """`moof` + `mdat` holding `fragments` (each track's samples in decode order), `sequence` counting from 1."""
    fragments = [fragment for fragment in fragments if fragment.samples]
    placeholder = _moof(sequence, fragments, [0] * len(fragments))
    offsets, offset = [], len(placeholder) + 8  # the mdat header comes between the moof and the data
    for fragment in fragments:
        offsets.append(offset)
        offset += sum(len(sample.data) for sample in fragment.samples)
    moof = _moof(sequence, fragments, offsets)
    payload = b"".join(sample.data for fragment in fragments for sample in fragment.samples)
    return moof + _box(b"mdat", payload)


def avcc_from_annexb(data: bytes) -> bytes:
    """H.264 access unit with start codes (what libx264 writes) -> length-prefixed NAL units (what MP4 stores)."""
    units = []
    for unit in data.split(b"\x00\x00\x01"):
        unit = unit.rstrip(b"\x00")  # a 4-byte start code leaves its leading zero at the end of the previous unit
        if unit:
            units.append(struct.pack(">I", len(unit)) + unit)
    return b"".join(units)


def _moof(sequence: int, fragments: list[TrackFragment], data_offsets: list[int]) -> bytes:
    trafs = [_traf(fragment, data_offset) for fragment, data_offset in zip(fragments, data_offsets, strict=True)]
    return _box(b"moof", _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)


def _traf(fragment: TrackFragment, data_offset: int) -> bytes:
    samples = fragment.samples
    tfhd = _full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", fragment.track_id))
    tfdt = _full_box(b"tfdt", 1, 0, struct.pack(">Q", samples[0].decode_time))
    entries = b"".join(
        struct.pack(
            ">IIIi",
            sample.duration,
            len(sample.data),
            SYNC_SAMPLE_FLAGS if sample.sync else OTHER_SAMPLE_FLAGS,
            sample.composition_offset,
        )
        for sample in samples
    )
    trun = _full_box(b"trun", 1, TRUN_FLAGS, struct.pack(">Ii", len(samples), data_offset) + entries)
    return _box(b"traf", tfhd, tfdt, trun)


# MARK: - boxes


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, offset, size) of each box from `start` to `end` (one level, no nesting)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8:
            raise ValueError(f"bad box size {size} at {start}")
        yield kind.decode("latin-1"), start, size
        start += size


def _children(body: bytes, kind: str) -> Iterator[bytes]:
    """The bodies (after the 8-byte header) of the `kind` boxes directly inside `body`."""
    for found, start, size in boxes(body):
        if found == kind:
            yield body[start + 8 : start + size]


def _child(body: bytes, *path: str) -> bytes:
    """The body of the first box along `path` (e.g. "mdia", "mdhd") inside `body`."""
    for kind in path:
        body = next(_children(body, kind), None)
        if body is None:
            raise ValueError(f"no {kind} box")
    return body


def _box(kind: bytes, *payloads: bytes) -> bytes:
    body = b"".join(payloads)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), payload)
