"""pyproject.toml: metadata in the current (PEP 639) form, so building warns about nothing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_its_file() -> None:
    """setuptools deprecates the ``license = {text = ...}`` table (SetuptoolsDeprecationWarning
    on every ``pip install -e .``); the SPDX string needs setuptools >= 77 to build."""
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "pd-hlr contributors" in text
    assert not any("License ::" in c for c in project.get("classifiers", []))  # PEP 639: one place
    requires = PYPROJECT["build-system"]["requires"]
    setuptools = next(r for r in requires if r.startswith("setuptools"))
    floor = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert floor and int(floor.group(1)) >= 77


def test_dev_brings_what_the_notebook_test_and_its_rendering_use() -> None:
    dev = " ".join(PYPROJECT["project"]["optional-dependencies"]["dev"])
    for name in ("nbclient", "nbformat", "ipykernel", "ipywidgets", "nbconvert", "matplotlib"):
        assert name in dev
