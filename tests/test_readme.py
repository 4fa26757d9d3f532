"""The README stays true: its schema table is the code's, CI runs its test command, its links
resolve, the extras it names exist, and it stays for users (figures and design one link away)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pd_hlr import schema

ROOT = Path(__file__).resolve().parents[1]


def test_readme_schema_table_is_generated_from_the_code():
    text = (ROOT / "README.md").read_text()
    match = re.search(
        r"<!-- schema-table:start.*?-->\n(.*?)\n<!-- schema-table:end -->", text, re.S
    )
    assert match, "schema table markers missing from README.md"
    assert match.group(1).strip() == schema.schema_table_markdown().strip()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    """The first screen: install from the package index and the demo (what .ci/wheel runs);
    then, from a clone, the main job and the test command CI runs."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert len(blocks) >= 2 and text.index("```bash") < text.index("\n## ")
    first = [line.split("#")[0].strip() for line in blocks[0].strip().splitlines()]
    assert first == ["pip install pd-hlr", "pd-hlr demo"]
    commands = blocks[1].strip().splitlines()
    assert len(commands) == 2
    assert "pd-hlr validate" in commands[0] and "--sandbox" in commands[0]
    assert commands[1].endswith("-m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and 'pip install --quiet -e ".[dev]"' in ci
    assert ".ci/wheel" in ci and "pd-hlr\" demo" in (ROOT / ".ci" / "wheel").read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


DOCS = ["README.md", "benchmarks/README.md", "docs/architecture.md", "data/README.md"]


def test_links_resolve():
    """Every relative link in the docs points at a file that exists; every #anchor at a heading."""
    for name in DOCS:
        path = ROOT / name
        text = path.read_text()
        anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            if target.startswith("#"):
                assert target[1:] in anchors, f"{name}: no heading for {target}"
            else:
                assert (path.parent / target.split("#")[0]).exists(), f"{name}: {target} missing"


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section {heading!r}"
    return match.group(1).strip()


def test_benchmarks_and_architecture_live_outside_the_readme():
    """The README is for users: figures and the module map are one link away."""
    readme = (ROOT / "README.md").read_text()
    for heading, target in (
        ("Benchmarks", "benchmarks/README.md"),
        ("Architecture", "docs/architecture.md"),
        ("Where the vendor's spec is silent", "docs/spec-gaps.md"),
    ):
        section = _section(readme, heading)
        assert f"]({target})" in section
        assert len(section.splitlines()) <= 3 and "|" not in section, f"{heading} is a pointer"
    figures = (ROOT / "benchmarks" / "README.md").read_text()
    assert "| benchmark | metric | pd-hlr | baseline | ratio |" in figures
    assert "Machine:" in figures and "Command:" in figures
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert "| module | its one job |" in architecture and "pipeline.py" in architecture


def test_every_extra_the_docs_name_exists():
    """`pip install "pd-hlr[x]"` works for every x the README, the notebook and the messages
    name; the notebook extra brings ipywidgets and the README says so."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    texts = [
        (ROOT / "README.md").read_text(),
        (ROOT / "notebooks" / "quickstart.ipynb").read_text(),
    ]
    texts += [p.read_text() for p in sorted((ROOT / "pd_hlr").rglob("*.py"))]
    named = {
        x.strip()
        for t in texts
        for group in re.findall(r"pd-hlr\[([\w,]+)\]", t)
        for x in group.split(",")
    }
    assert {"notebook", "plot", "dask"} <= named
    assert named <= set(extras), f"extras named but not defined: {named - set(extras)}"
    assert any(dep.startswith("ipywidgets") for dep in extras["notebook"])
    notebook = _section((ROOT / "README.md").read_text(), "The notebook")
    assert 'pip install "pd-hlr[notebook]"' in notebook and "ipywidgets" in notebook


def test_architecture_doc_names_every_module_of_the_package():
    """docs/architecture.md's module table lists each module (or subpackage) of pd_hlr once."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^\| `([\w/.]+)` \|", text, re.M))
    package = ROOT / "pd_hlr"
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert listed == modules
