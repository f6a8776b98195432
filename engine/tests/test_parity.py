"""Every upstream fixture in ../shared/parity must keep passing (see infinitetalk_engine/parity)."""

import pytest
from parity import all_checks, default_fixture_root

CHECKS = all_checks()


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_matches_upstream_fixture(check):
    root = default_fixture_root()
    if not root.is_dir():
        pytest.fail(f"parity fixtures not found at {root}")
    error = check.run(root)
    assert error <= check.tolerance, f"{check.name}: max abs error {error:.3e} > {check.tolerance:.0e}"
