"""The README stays a front door and the docs stay true: the README opens with the package
index's two commands, CI runs its test command, it renders on a package index page (no relative
link; tests/test_packaging.py checks it is the long description) and its Python blocks run; the
reference lives in docs/ (the generated tables there are the code's, its links resolve, the
extras it names exist, the API reference covers the public API) and the README names it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pd_hlr import schema

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"


def test_docs_schema_table_is_generated_from_the_code():
    """The schema table (docs/guide/columns.md, once the README's) is the code's."""
    text = (GUIDE / "columns.md").read_text()
    match = re.search(
        r"<!-- schema-table:start.*?-->\n(.*?)\n<!-- schema-table:end -->", text, re.S
    )
    assert match, "schema table markers missing from docs/guide/columns.md"
    assert match.group(1).strip() == schema.schema_table_markdown().strip()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    """The first screen: install from the package index and the demo (what .ci/wheel runs);
    further down, from a checkout, the main job and the test command CI runs."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert len(blocks) >= 2 and text.index("```bash") < text.index("\n## ")
    first = [line.split("#")[0].strip() for line in blocks[0].strip().splitlines()]
    assert first == ["pip install pd-hlr", "pd-hlr demo"]
    tests = [b for b in blocks if "pytest" in b]
    assert len(tests) == 1, "one block holds the test command"
    commands = tests[0].strip().splitlines()
    assert len(commands) == 2
    assert "pd-hlr validate" in commands[0] and "--sandbox" in commands[0]
    assert 'pip install -e ".[dev]"' in commands[0]
    assert commands[1].endswith("-m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and 'pip install --quiet -e ".[dev]"' in ci
    assert ".ci/wheel" in ci and "pd-hlr\" demo" in (ROOT / ".ci" / "wheel").read_text()


def _links(text: str) -> list[str]:
    """Every link target of a Markdown text: inline links and images, reference definitions,
    autolinks and HTML href/src attributes."""
    found = re.findall(r"\]\(\s*<?([^)\s>]+)", text)
    found += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.M)
    found += re.findall(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>", text)
    found += re.findall(r"""(?:href|src)\s*=\s*["']([^"']+)""", text)
    return found


def test_links_helper_finds_every_kind_of_link():
    text = (
        "[a](docs/x.md) ![i](img.png)\n[r]: ref.md\n[s]: <https://e.org/s>\n"
        '<https://e.org/a> <a href="h.html">h</a> <img src="p.png"> `<NA>` (not) [a link]'
    )
    assert set(_links(text)) == {
        "docs/x.md",
        "img.png",
        "ref.md",
        "https://e.org/s",
        "https://e.org/a",
        "h.html",
        "p.png",
    }


def test_readme_has_no_relative_links():
    """A package index page shows the README without the repository around it: a relative link
    (a file, or an #anchor of a heading the index may slug otherwise) would break there.
    Every link is an absolute https URL; the docs are named by their paths, as text."""
    links = _links(README.read_text())
    assert links, "the README links to the vendor's API"
    for target in links:
        assert re.match(r"https://[\w.-]+\.[a-z]{2,}/", target + "/"), target


def test_readme_renders_on_a_package_index():
    """The long description renders as a package index renders it (readme_renderer, what
    ``twine check`` runs), and every link in the rendered page is absolute."""
    from readme_renderer.markdown import render

    html = render(README.read_text(), variant="GFM")
    assert html is not None and re.search(r"<h1[^>]*>pd-hlr<", html) and "<table>" in html
    for target in re.findall(r"""(?:href|src)="([^"]+)""", html):
        # the renderer's own heading anchors (#user-content-...) resolve on any page
        assert target.startswith(("https://", "#user-content-")), target


def _slug(heading: str) -> str:
    """The anchor of a heading (GitHub's and MkDocs' toc agree on the headings used here)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _expand(text: str) -> str:
    """A page as MkDocs sees it: ``--8<-- "path"`` lines (pymdownx.snippets) included."""
    return re.sub(
        r'^--8<-- "([^"]+)"$', lambda m: (ROOT / m.group(1)).read_text(), text, flags=re.M
    )


DOCS = [
    "benchmarks/README.md",
    "data/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")),
]


def test_links_resolve():
    """Every relative link in the docs points at a file that exists; every #anchor at a
    heading of its page (MkDocs --strict checks the site's links too, in .ci/docs)."""
    assert "docs/guide/cli.md" in DOCS and "docs/index.md" in DOCS
    for name in DOCS:
        path = ROOT / name
        for target in _links(_expand(path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            page = (path.parent / file) if file else path
            assert page.exists(), f"{name}: {target} missing"
            if anchor:
                text = _expand(page.read_text())
                anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
                assert anchor in anchors, f"{name}: no heading for {target}"


def _nav_pages() -> list[str]:
    """The pages of mkdocs.yml's nav, in order."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text.split("\nnav:\n", 1)[1]
    nav = nav[: re.search(r"^\S", nav, re.M).start()]
    return re.findall(r":\s+(\S+\.md)\s*$", nav, re.M)


def test_the_reference_lives_in_the_docs_and_the_readme_names_it():
    """The README is a front door: short, no reference tables; every user-guide page is in
    the site's nav and named in the README by its path (text, not a link); the generated
    tables moved with their markers."""
    readme = README.read_text()
    assert 100 <= len(readme.splitlines()) <= 250
    assert "<!--" not in readme, "a generated table is still in the README"
    pages = _nav_pages()
    guide = sorted(p.name for p in GUIDE.glob("*.md"))
    assert {f"guide/{n}" for n in guide} <= set(pages)
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
    for name in [*(f"guide/{n}" for n in guide), "api.md", "architecture.md", "spec-gaps.md"]:
        assert f"`docs/{name}`" in readme, f"the README does not name docs/{name}"
    for marker, page in (
        ("options-table", "python.md"),
        ("schema-table", "columns.md"),
        ("normalize-table", "normalisation.md"),
        ("retry-table", "retry.md"),
        ("exit-codes", "cli.md"),
    ):
        text = (GUIDE / page).read_text()
        assert f"<!-- {marker}:start" in text and f"<!-- {marker}:end -->" in text, page
    # the figures stay beside the scripts that make them; the docs page includes them whole
    figures = (ROOT / "benchmarks" / "README.md").read_text()
    assert "| benchmark | metric | pd-hlr | baseline | ratio |" in figures
    assert "Machine:" in figures and "Command:" in figures
    assert '--8<-- "benchmarks/README.md"' in (GUIDE / "benchmarks.md").read_text()
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert "| module | its one job |" in architecture and "pipeline.py" in architecture


def test_every_extra_the_docs_name_exists():
    """`pip install "pd-hlr[x]"` works for every x the README, the docs, the notebook and the
    messages name; the README's table names every extra; the notebook extra brings ipywidgets
    and the docs say so."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    readme = README.read_text()
    texts = [readme, (ROOT / "notebooks" / "quickstart.ipynb").read_text()]
    texts += [p.read_text() for p in sorted((ROOT / "docs").rglob("*.md"))]
    texts += [p.read_text() for p in sorted((ROOT / "pd_hlr").rglob("*.py"))]
    named = {
        x.strip()
        for t in texts
        for group in re.findall(r"pd-hlr\[([\w,]+)\]", t)
        for x in group.split(",")
    }
    assert {"notebook", "plot", "dask"} <= named
    assert named <= set(extras), f"extras named but not defined: {named - set(extras)}"
    in_table = set(re.findall(r"^\| `pd-hlr\[(\w+)\]` \|", readme, re.M))
    assert in_table == set(extras) - {"dev"}
    assert any(dep.startswith("ipywidgets") for dep in extras["notebook"])
    notebook = (GUIDE / "notebook.md").read_text()
    assert 'pip install "pd-hlr[notebook]"' in notebook and "ipywidgets" in notebook


def test_architecture_doc_names_every_module_of_the_package():
    """docs/architecture.md's module table lists each module (or subpackage) of pd_hlr once."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^\| `([\w/.]+)` \|", text, re.M))
    package = ROOT / "pd_hlr"
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert listed == modules


def test_the_api_reference_covers_the_public_api():
    """docs/api.md (mkdocstrings) documents every name ``pd_hlr`` exports, each face's
    accessor or namespace class, the options and the retry policy."""
    import pd_hlr

    targets = re.findall(r"^::: ([\w.]+)$", (ROOT / "docs" / "api.md").read_text(), re.M)
    last = {t.rsplit(".", 1)[-1] for t in targets}
    for name in set(pd_hlr.__all__) - {"__version__"}:
        obj = getattr(pd_hlr, name)
        module = obj.__name__ if name == "datasets" else obj.__module__
        assert name in last or module in targets, f"pd_hlr.{name} is not in the API reference"
    faces = {
        "pd_hlr.accessor.HLRFrameAccessor",
        "pd_hlr.accessor.HLRSeriesAccessor",
        "pd_hlr.polars.HLRFrameNamespace",
        "pd_hlr.polars.HLRLazyNamespace",
        "pd_hlr.polars.HLRSeriesNamespace",
        "pd_hlr.dask.HLRDaskFrameAccessor",
        "pd_hlr.dask.HLRDaskSeriesAccessor",
        "pd_hlr.options.ValidateOptions",
        "pd_hlr.retry.RetryPolicy",
    }
    assert faces <= set(targets), faces - set(targets)


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path: Path):
    """The README's Python blocks run as written, in order (the demo, a real run pointed at a
    local sandbox, the export, the read-back), and no number is paid for twice. .ci/wheel runs
    the same script from the installed wheel."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_quickstart.py"), str(README)],
        cwd=tmp_path,
        env={**os.environ, "PD_HLR_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "README blocks run: 4;" in proc.stdout
    assert "xlsx sheets ['results', 'report']" in proc.stdout
