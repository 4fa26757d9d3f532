"""Print ``name==floor`` pins for the project's direct dependencies (and the extras named).

Every requirement must declare its floor as ``>=X``; the pin installs exactly that floor, so CI
proves the floors in pyproject.toml are true. Usage: ``python .ci/floors.py [EXTRA ...]``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(extras: list[str]) -> list[str]:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if not match:
            raise SystemExit(f"no '>=' floor in {requirement!r}: declare one")
        name, extra, floor = match.groups()
        pins.append(f"{name}{extra or ''}=={floor}")
    return pins


if __name__ == "__main__":
    print("\n".join(floors(sys.argv[1:])))
