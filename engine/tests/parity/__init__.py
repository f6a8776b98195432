"""Parity checks against the upstream fixtures in `../shared/parity/`.

Each module here (`dit.py`, `t5.py`, ...) exposes `CHECKS`: a list of `Check`. A check reads its inputs, weights and
expected outputs from the fixture folder (configs and shapes come from the files, never from constants here), runs
our modules, and returns the max abs error. Test-side code, not shipped with the engine package:
`make parity` (`PYTHONPATH=engine/tests python -m parity [DIR]`) prints the table; `engine/tests/test_parity.py` runs
the same checks under pytest.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Check:
    name: str  # e.g. "dit/single out"
    tolerance: float  # max abs error allowed (see the fixture README's table)
    run: Callable[[Path], float]  # fixture root -> max abs error


def default_fixture_root() -> Path:
    """`<repo>/../shared/parity`, found relative to this file (as CI lays it out)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "parity"


def all_checks() -> list[Check]:
    checks: list[Check] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        checks.extend(importlib.import_module(f"{__name__}.{module.name}").CHECKS)
    return checks
