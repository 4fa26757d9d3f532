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


def test_classifiers_are_real_and_claim_only_what_ci_runs() -> None:
    from trove_classifiers import classifiers as known

    project = PYPROJECT["project"]
    assert set(project["classifiers"]) <= known, set(project["classifiers"]) - known
    versions = [c for c in project["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)]
    assert versions == ["Programming Language :: Python :: 3.11"]  # CI's Python
    assert project["requires-python"] == ">=3.11"
    assert "Typing :: Typed" in project["classifiers"] and (ROOT / "pd_hlr" / "py.typed").exists()


def test_every_runtime_dependency_declares_a_floor_ci_installs() -> None:
    """.ci/lowest-deps installs exactly these pins; each needs a ``>=`` floor."""
    import subprocess
    import sys

    pins = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "floors.py"), "excel"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    names = [re.split(r"[\[=<>]", r, maxsplit=1)[0] for r in PYPROJECT["project"]["dependencies"]]
    assert [p.split("==")[0] for p in pins] == [*names, "openpyxl"]
    assert "urllib3==2.0.2" in pins  # retry.py works without Retry(retry_after_max=), < 2.7


def test_the_sample_list_is_package_data_with_one_copy() -> None:
    packaged = ROOT / "pd_hlr" / "datasets" / "contacts.csv"
    linked = ROOT / "data" / "contacts.csv"
    assert packaged.is_file() and not packaged.is_symlink()
    assert linked.is_symlink() and linked.resolve() == packaged.resolve()
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["pd_hlr"]
    assert "datasets/*.csv" in data


def test_what_the_readme_and_demo_write_in_a_checkout_is_ignored(tmp_path: Path) -> None:
    """The README's main job (``--out contacts.hlr.parquet``), its exports and ``pd-hlr demo``
    write into the checkout's root: git must not offer them for a commit."""
    import shutil
    import subprocess

    if not shutil.which("git") or not (ROOT / ".git").exists():
        import pytest

        pytest.skip("not a git checkout")
    readme = (ROOT / "README.md").read_text()
    outs = set(re.findall(r"--out (\S+\.(?:parquet|csv|xlsx))", readme))
    assert {"contacts.hlr.parquet", "contacts.hlr.xlsx"} <= outs
    exports = set(re.findall(r"\.hlr\.to_\w+\(\"([^\"/]+)\"\)", readme))
    assert {"enriched.parquet", "enriched.xlsx", "enriched.csv"} <= exports
    names = [*outs, *exports, "contacts.hlr.xlsx", "contacts.hlr.csv"]
    for name in names:
        check = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
        assert check.returncode == 0, f"{name} is not covered by .gitignore"


def _build(hook: str, out: Path) -> Path:
    """Run one setuptools build hook (``build_sdist``, ``prepare_metadata_for_build_wheel``) as
    pip and ``python -m build`` run it, in a fresh process; the path of what it made."""
    import subprocess
    import sys

    code = f"import sys; from setuptools import build_meta as b; print(b.{hook}(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out / proc.stdout.strip().splitlines()[-1]


def test_package_metadata_long_description_is_the_readme(tmp_path: Path) -> None:
    """What the built wheel's METADATA carries: the README, as Markdown (what a package index
    renders); and no project URL that is not an https URL."""
    import email.parser

    metadata = (_build("prepare_metadata_for_build_wheel", tmp_path) / "METADATA").read_text(
        encoding="utf-8"
    )
    message = email.parser.Parser().parsestr(metadata)
    assert message["Name"] == "pd-hlr"
    assert message["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert message.get_payload().strip() == readme.strip()
    for url in message.get_all("Project-URL") or []:
        assert re.match(r"[^,]+, https://", url), url


def test_the_sdist_carries_the_docs_the_readme_names(tmp_path: Path) -> None:
    """The README, on a package index, names the docs by path (there is no hosted copy): the
    source distribution holds each named file, and what ``mkdocs build`` needs to build them."""
    import tarfile

    with tarfile.open(_build("build_sdist", tmp_path)) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:docs/[\w/.-]+\.md)|CHANGELOG\.md)`", readme))
    assert {"CHANGELOG.md", "docs/api.md", "docs/guide/cli.md"} <= named
    assert named <= names, named - names
    assert {"mkdocs.yml", "benchmarks/README.md", "docs/griffe_doctests.py"} <= names
    assert {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")} <= names
