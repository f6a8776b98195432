"""`python -m infinitetalk_engine --engine preview|infinitetalk [options]`: the engine worker process.

stdout carries only protocol lines; everything else (logs, warnings, tracebacks, stray prints, and anything
native libraries write to file descriptor 1) goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import os
import sys
from collections.abc import Sequence

from .contract import EngineError, EngineOptions
from .engines import ENGINE_NAMES, make_engine
from .job_context import MIN_PROGRESS_INTERVAL
from .protocol import Error, MessageWriter
from .worker import Worker


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EngineOptions()
    parser = argparse.ArgumentParser(
        prog="python -m infinitetalk_engine",
        description="Engine worker speaking JSON lines on stdin/stdout (docs/engine-protocol.md).",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default="preview",
        help="preview: CPU face animation (not the model); infinitetalk: the real model (GPU)",
    )
    parser.add_argument("--weights", help="the weights/ folder (infinitetalk engine)")
    parser.add_argument("--device", help="torch device for the infinitetalk engine, e.g. cuda, cuda:1, cpu")
    parser.add_argument(
        "--max-jobs", type=positive_int, help="jobs run at once (capabilities.max_concurrent_jobs); preview default 2"
    )
    parser.add_argument(
        "--max-audio-seconds",
        type=positive_float,
        default=defaults.max_audio_seconds,
        help=f"refuse longer audio with bad_audio (default {defaults.max_audio_seconds:g})",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=defaults.max_image_pixels,
        help=f"refuse larger images with bad_image (default {defaults.max_image_pixels})",
    )
    parser.add_argument("--video-crf", type=int, help="libx264 CRF of the output (engine default if unset)")
    parser.add_argument("--video-preset", help="libx264 preset of the output, e.g. superfast, veryfast, medium")
    parser.add_argument(
        "--engine-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an engine-specific option (repeatable)",
    )
    parser.add_argument(
        "--progress-interval",
        type=non_negative_float,
        default=MIN_PROGRESS_INTERVAL,
        metavar="SECONDS",
        help=f"at most one progress event per job this often (default {MIN_PROGRESS_INTERVAL:g}; 0 = every event)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> EngineOptions:
    """Each `EngineOptions` field from the option of the same name; `extra` from the `--engine-option`s."""
    named = {f.name: getattr(args, f.name) for f in dataclasses.fields(EngineOptions) if f.name != "extra"}
    return EngineOptions(**named, extra=dict(args.engine_option))


def take_over_stdout() -> io.TextIOWrapper:
    """Keep the real stdout for protocol lines only; point fd 1 and `sys.stdout` at stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.TextIOWrapper(
        os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8", newline="\n", write_through=True
    )


def main(argv: Sequence[str] | None = None) -> int:
    protocol_out = take_over_stdout()
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    writer = MessageWriter(protocol_out)
    try:
        engine = make_engine(args.engine, options_from(args))
    except Exception as exc:  # the engine cannot even be built: report it before any hello
        logging.getLogger(__name__).exception("building the %s engine failed", args.engine)
        message = exc.message if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
        writer.send(Error(None, "load_failed", message, False))
        return 1
    # A private reader of fd 0, never closed: the input thread may still be blocked in it when we exit, and
    # closing a buffered reader another thread is reading would wait for that read.
    stdin = open(os.dup(0), "rb")  # noqa: SIM115 (never closed on purpose, see above)
    return Worker(engine, writer, progress_interval=args.progress_interval).serve(stdin)


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Exit at once: daemon threads (the stdin reader, a job that ignored cancel) must not block or crash shutdown.
    os._exit(status)
