"""`make parity`: run every parity check and print a table; exit 1 if any fails."""

import sys
import time
from pathlib import Path

from . import all_checks, default_fixture_root


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_fixture_root()
    rows, failed = [], 0
    for check in all_checks():
        started = time.perf_counter()
        try:
            error = check.run(root)
            passed = error <= check.tolerance
            shown = f"{error:.3e}"
        except Exception as exc:  # a crashing check is a failing check, shown with its reason
            passed, shown = False, f"error: {exc}"
        failed += not passed
        rows.append(
            (
                check.name,
                shown,
                f"{check.tolerance:.0e}",
                "pass" if passed else "FAIL",
                f"{time.perf_counter() - started:.1f}s",
            )
        )
    widths = [
        max(len(r[i]) for r in rows + [("fixture", "max abs err", "tolerance", "result", "time")]) for i in range(5)
    ]
    for row in [("fixture", "max abs err", "tolerance", "result", "time")] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
