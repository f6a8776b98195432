"""A job's live stream on disk: `init.mp4`, one `clip-NNNNN.m4s` per clip and `live.m3u8`, in one folder.

Every file is written as `NAME.part` and renamed when whole, so a reader never sees half a file; the segment is
announced (`on_segment`) only after its rename. The playlist is an HLS EVENT playlist (RFC 8216): it only grows, and
`#EXT-X-ENDLIST` closes it when the video is complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..contract import JobContext, JobRequest

INIT_FILE = "init.mp4"
PLAYLIST_FILE = "live.m3u8"


def segment_file(index: int) -> str:
    """The file name of the `index`-th (1-based) media segment."""
    return f"clip-{index:05d}.m4s"


@dataclass(frozen=True)
class LiveSegment:
    """A media segment that is complete on disk."""

    index: int  # 1-based
    file: str
    duration_seconds: float  # its video length
    end_seconds: float  # the video available so far, this segment included


class LiveStreamFolder:
    """Writes the files of one live stream into `directory` (created if missing)."""

    def __init__(self, directory: str, on_segment: Callable[[LiveSegment], None] | None = None):
        self.directory = directory
        self.segments: list[LiveSegment] = []
        self._on_segment = on_segment
        os.makedirs(directory, exist_ok=True)

    def write_init(self, data: bytes) -> None:
        self._write(INIT_FILE, data)

    def write_segment(self, data: bytes, duration_seconds: float, end_seconds: float) -> LiveSegment:
        index = len(self.segments) + 1
        segment = LiveSegment(index, segment_file(index), duration_seconds, end_seconds)
        self._write(segment.file, data)
        self.segments.append(segment)
        self._write(PLAYLIST_FILE, self.playlist(ended=False).encode())
        if self._on_segment is not None:
            self._on_segment(segment)
        return segment

    def end(self) -> None:
        """Close the playlist: no segment will follow."""
        if self.segments:
            self._write(PLAYLIST_FILE, self.playlist(ended=True).encode())

    def playlist(self, ended: bool) -> str:
        longest = max((segment.duration_seconds for segment in self.segments), default=1.0)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{math.ceil(longest)}",
            "#EXT-X-PLAYLIST-TYPE:EVENT",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            "#EXT-X-MEDIA-SEQUENCE:0",
            f'#EXT-X-MAP:URI="{INIT_FILE}"',
        ]
        for segment in self.segments:
            lines += [f"#EXTINF:{segment.duration_seconds:.3f},", segment.file]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _write(self, name: str, data: bytes) -> None:
        path = os.path.join(self.directory, name)
        with open(path + ".part", "wb") as file:
            file.write(data)
        os.replace(path + ".part", path)


def live_stream_folder(job: JobRequest, ctx: JobContext) -> LiveStreamFolder | None:
    """The live stream a job asked for (`segments_dir`), announcing each segment through `ctx`; None if not asked."""
    if job.segments_dir is None:
        return None
    return LiveStreamFolder(job.segments_dir, on_segment=ctx.segment_ready)
