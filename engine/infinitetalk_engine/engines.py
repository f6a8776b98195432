"""Engines by name. `make_engine("preview", options)`; the infinitetalk engine is imported only when asked for,
so the preview never imports torch or the model code."""

from __future__ import annotations

import importlib

from .contract import Engine, EngineError, EngineOptions

ENGINE_NAMES = ("preview", "infinitetalk")
INFINITETALK_MODULE = f"{__package__}.infinitetalk"


def make_engine(name: str, options: EngineOptions) -> Engine:
    """Build (not load) the named engine. Raises `EngineError("load_failed")` if it is unknown or not installed."""
    if name == "preview":
        from .preview.engine import PreviewEngine

        return PreviewEngine(options)
    if name == "infinitetalk":
        return _make_infinitetalk(options)
    raise EngineError("load_failed", f"unknown engine {name!r}; expected one of {', '.join(ENGINE_NAMES)}")


def _make_infinitetalk(options: EngineOptions) -> Engine:
    """`infinitetalk/engine.py` must define `InfiniteTalkEngine(options: EngineOptions)`."""
    module_name = f"{INFINITETALK_MODULE}.engine"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (INFINITETALK_MODULE, module_name):
            raise EngineError(
                "load_failed", f"the infinitetalk engine needs the Python package {exc.name!r}, which is not installed"
            ) from exc
        raise EngineError(
            "load_failed",
            "the infinitetalk engine is not part of this installation "
            "(infinitetalk_engine/infinitetalk/ is missing); "
            "use --engine preview",
        ) from exc
    engine_class = getattr(module, "InfiniteTalkEngine", None)
    if engine_class is None:
        raise EngineError("load_failed", f"{module_name} defines no InfiniteTalkEngine class")
    return engine_class(options)
