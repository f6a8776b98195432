"""The live stream (media/live_stream.py, media/cmaf.py): each clip becomes a CMAF segment, as playable as the MP4.

Ten clips of one second each. Every clip has one white frame, and the audio has a short beep at the same moment,
so lip sync can be checked from the outside: in the segments, each beep must start within one frame of its flash.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from infinitetalk_engine.media import cmaf
from infinitetalk_engine.media.live_stream import LiveStreamFolder
from infinitetalk_engine.media.video import Mp4Writer

FPS, RATE = 25, 16_000
WIDTH, HEIGHT = 64, 48
CLIPS, CLIP_FRAMES = 10, 25
FLASH_FRAME = 10  # within each clip
FRAME = Fraction(1, FPS)


def clip_frames(clip: int) -> np.ndarray:
    frames = np.full((CLIP_FRAMES, HEIGHT, WIDTH, 3), 30 + clip, np.uint8)
    frames[FLASH_FRAME] = 255
    return frames


def beeps() -> np.ndarray:
    """Silence with a 40 ms 1 kHz beep where each clip's flash is."""
    audio = np.zeros(CLIPS * CLIP_FRAMES * RATE // FPS, np.float32)
    beep = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE // FPS) / RATE)
    for clip in range(CLIPS):
        start = (clip * CLIP_FRAMES + FLASH_FRAME) * RATE // FPS
        audio[start : start + beep.size] = beep
    return audio


class Recorder:
    """Writes the clips one by one; `after_clip(k)` runs once clip k's segment is announced."""

    def __init__(self, folder: Path, after_clip=lambda clip: None):
        self.folder, self.announced = folder, []
        self._after_clip = after_clip

    def run(self) -> Path:
        output = self.folder / "video.mp4"
        live = LiveStreamFolder(str(self.folder / "live"), on_segment=self.announced.append)
        with Mp4Writer(str(output), WIDTH, HEIGHT, audio=beeps(), max_frames=CLIPS * CLIP_FRAMES, live=live) as writer:
            for clip in range(CLIPS):
                writer.write(clip_frames(clip))
                writer.end_clip()
                self._after_clip(clip + 1)
        return output


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """(final MP4, live folder, announced segments, the ffprobe frame counts of the playlist after clip 3)."""
    folder = tmp_path_factory.mktemp("live")
    counts_midway = {}

    def probe_midway(clip):
        if clip == 3:
            counts_midway.update(playlist_frame_counts(folder / "live" / "live.m3u8"))
            counts_midway["playlist"] = (folder / "live" / "live.m3u8").read_text()

    recorder = Recorder(folder, probe_midway)
    output = recorder.run()
    return output, folder / "live", recorder.announced, counts_midway


def playlist_frame_counts(playlist: Path) -> dict[str, int]:
    """ffprobe's frame counts. A playlist without ENDLIST is live to ffprobe: read it from its first segment and stop
    after reloads that bring nothing new (by default it would wait a long time for more segments)."""
    live = ["-live_start_index", "0", "-m3u8_hold_counters", "2"]
    entries = ["-show_entries", "stream=codec_type,nb_read_frames", "-of", "csv=p=0"]
    result = subprocess.run(
        ["ffprobe", "-v", "error", *live, "-count_frames", *entries, str(playlist)],
        check=True,
        capture_output=True,
        text=True,
    )
    return {kind: int(count) for kind, count in (line.split(",") for line in result.stdout.split())}


def concatenated(live: Path, files: list[str], target: Path) -> Path:
    target.write_bytes((live / "init.mp4").read_bytes() + b"".join((live / name).read_bytes() for name in files))
    return target


def decode(path: Path) -> tuple[list[Fraction], list[float], Fraction, np.ndarray]:
    """(video frame times, their mean brightness, the time of the first audio sample, the audio samples)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    with av.open(str(path)) as container:
        chunks = list(container.decode(audio=0))
    times = [frame.pts * frame.time_base for frame in frames]
    brightness = [float(frame.to_ndarray(format="gray").mean()) for frame in frames]
    audio_start = chunks[0].pts * chunks[0].time_base
    return times, brightness, audio_start, np.concatenate([chunk.to_ndarray()[0] for chunk in chunks])


def test_the_playlist_grows_by_one_segment_per_clip_and_ends_when_the_video_is_complete(stream):
    _, live, announced, midway = stream
    assert [segment.file for segment in announced] == [f"clip-{k:05d}.m4s" for k in range(1, CLIPS + 1)]
    assert [segment.end_seconds for segment in announced] == [k * CLIP_FRAMES / FPS for k in range(1, CLIPS + 1)]
    assert midway["playlist"].count("#EXTINF:1.000,") == 3 and "#EXT-X-ENDLIST" not in midway["playlist"]
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in midway["playlist"] and '#EXT-X-MAP:URI="init.mp4"' in midway["playlist"]
    final = (live / "live.m3u8").read_text()
    assert final.count("#EXTINF:1.000,") == CLIPS and final.endswith("#EXT-X-ENDLIST\n")
    assert not [path for path in live.iterdir() if path.suffix == ".part"]


def test_ffprobe_reads_the_playlist_while_the_video_is_written_and_after(stream):
    _, live, _, midway = stream
    assert midway["video"] == 3 * CLIP_FRAMES
    assert playlist_frame_counts(live / "live.m3u8")["video"] == CLIPS * CLIP_FRAMES


def test_the_segments_sound_exactly_like_the_final_mp4(stream, tmp_path):
    """Tolerance: none. The segments carry the MP4's own AAC packets, so the decoded samples are identical; the
    segments only keep the encoder's priming samples in front (the MP4 hides them with an edit list)."""
    output, live, announced, _ = stream
    _, _, _, final = decode(output)
    _, _, _, live_audio = decode(concatenated(live, [s.file for s in announced], tmp_path / "all.mp4"))
    priming = live_audio.size - final.size
    assert 0 <= priming <= 2048
    np.testing.assert_array_equal(live_audio[priming:], final)


def test_each_beep_starts_within_one_frame_of_its_flash_over_ten_clips(stream, tmp_path):
    _, live, announced, _ = stream
    times, brightness, audio_start, audio = decode(concatenated(live, [s.file for s in announced], tmp_path / "a.mp4"))
    assert len(times) == CLIPS * CLIP_FRAMES
    assert all(later - earlier == FRAME for earlier, later in zip(times, times[1:], strict=False))  # no gap, no jump
    flashes = [time for time, level in zip(times, brightness, strict=True) if level > 200]
    loud = np.abs(audio) > 0.1
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    onsets = [onset for onset in onsets if not loud[max(0, onset - RATE // 50) : onset].any()]  # after 20 ms quiet
    beep_times = [audio_start + Fraction(int(onset), RATE) for onset in onsets]
    assert len(flashes) == len(beep_times) == CLIPS
    offsets = [abs(beep - flash) for beep, flash in zip(beep_times, flashes, strict=True)]
    assert max(offsets) < FRAME, offsets


def test_every_segment_starts_with_a_key_frame_and_plays_on_its_own(stream, tmp_path):
    _, live, announced, _ = stream
    for segment in (announced[0], announced[4], announced[-1]):
        alone = concatenated(live, [segment.file], tmp_path / f"{segment.index}.mp4")
        with av.open(str(alone)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == CLIP_FRAMES and frames[0].key_frame
        assert frames[0].pts * frames[0].time_base > (segment.index - 1) * CLIP_FRAMES * FRAME - FRAME  # its own time


def test_the_init_segment_declares_an_h264_and_an_aac_track_and_no_edit_list(stream):
    _, live, _, _ = stream
    init = (live / "init.mp4").read_bytes()
    assert [kind for kind, _, _ in cmaf.boxes(init)] == ["ftyp", "moov"]
    assert b"cmfc" in init[:32] and b"avcC" in init and b"esds" in init and b"mvex" in init
    assert b"elst" not in init  # players would shift the two tracks differently
    assert set(cmaf.tracks(init)) == {"vide", "soun"}


def test_a_failed_job_keeps_the_finished_segments_and_leaves_no_part_file(tmp_path):
    def fail_after_two(clip):
        if clip == 2:
            raise RuntimeError("out of memory in clip 3")

    with pytest.raises(RuntimeError):
        Recorder(tmp_path, fail_after_two).run()
    names = sorted(path.name for path in (tmp_path / "live").iterdir())
    assert names == ["clip-00001.m4s", "clip-00002.m4s", "init.mp4", "live.m3u8"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["live"]  # the MP4's part file is gone


@pytest.mark.parametrize(
    ("annexb", "avcc"),
    [
        (b"\x00\x00\x00\x01\x67AB\x00\x00\x00\x01\x68C", b"\x00\x00\x00\x03\x67AB\x00\x00\x00\x02\x68C"),
        (b"\x00\x00\x01\x65xyz\x00\x00\x01\x41q", b"\x00\x00\x00\x04\x65xyz\x00\x00\x00\x02\x41q"),
    ],
)
def test_annex_b_start_codes_become_length_prefixes(annexb, avcc):
    assert cmaf.avcc_from_annexb(annexb) == avcc
