"""requirements/lowest.txt pins exactly the floors pyproject.toml declares,
so the second test run (``make test-lowest``) checks the floors we promise."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

pytestmark = pytest.mark.unit


ROOT = Path(__file__).resolve().parent.parent


def floor(requirement: Requirement) -> Version:
    [lowest] = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return lowest


def test_every_dependency_is_pinned_at_its_floor_and_nothing_else_is():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {r.name: floor(r) for r in map(Requirement, project["dependencies"])}
    pins = {}
    for line in (ROOT / "requirements" / "lowest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            [spec] = pin.specifier
            assert spec.operator == "==", f"{line!r} must pin one exact version"
            pins[pin.name] = Version(spec.version)
    assert pins == declared
