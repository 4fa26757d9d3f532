"""``notebooks/quickstart.ipynb`` runs top to bottom, and the committed copy has its outputs.

The notebook is executed with nbclient in a kernel that is *this* interpreter (a kernelspec
written into a temporary ``JUPYTER_PATH`` that points at ``sys.executable``, checked by a cell
appended to the in-memory copy), with the notebook's folder as the working directory.

To refresh the committed outputs after changing the notebook or the library::

    PD_HLR_UPDATE_NOTEBOOK=1 .venv/bin/python -m pytest tests/test_notebook.py
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
TIMEOUT = 120  # seconds per cell; the whole notebook takes ~10 s
CHECK_CELL_ID = "pd-hlr-test-kernel-check"
#: The only stderr a cell may print: the progress bar's text form (tqdm without widgets, or a
#: saved bar's final line). A warning, a log line or a traceback on stderr fails the test.
PROGRESS_BAR = re.compile(r"HLR lookups\b")


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``python3`` kernelspec for this interpreter, found before any user-level one."""
    from ipykernel.kernelspec import install

    prefix = tmp_path / "jupyter-prefix"
    install(kernel_name="python3", prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


def _execute(nb: nbformat.NotebookNode, kernel_name: str) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        coalesce_streams=True,  # one stream per cell, progress-bar redraws folded
        allow_errors=False,
    )
    client.execute()
    return nb


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


def _stderr_other_than_the_bar(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stderr":
                lines = [ln.strip() for ln in re.split(r"[\r\n]+", out.text) if ln.strip()]
                found += [f"cell {i}: {ln}" for ln in lines if not PROGRESS_BAR.match(ln)]
    return found


def test_notebook_hides_no_warning() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for hiding in ("filterwarnings", "simplefilter", "catch_warnings", "logging.disable"):
        assert hiding not in code


def test_notebook_executes_top_to_bottom(venv_kernel: str) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    check = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")
    check["id"] = CHECK_CELL_ID
    nb.cells.append(check)

    executed = _execute(nb, venv_kernel)

    assert _errors(executed) == []
    assert _text(executed.cells[-1]).strip() == sys.prefix, "the kernel is not this venv"
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    joined = "\n".join(_text(c) for c in code)
    assert "refused:" in joined  # the budget stopped the run
    assert "same data and dtypes after the round trip: True" in joined
    assert "new requests to the sandbox: 0" in joined
    assert "HLR lookups" in joined  # the progress bar was drawn
    assert "IProgress" not in joined
    assert _stderr_other_than_the_bar(executed) == []
    # 2,736: each row read in its own country (region_column), GB for the rest (issue 23)
    assert "share of the 2,736 answered rows" in joined  # the summary says its denominators
    assert 'HLR summary by country' in joined

    if os.environ.get("PD_HLR_UPDATE_NOTEBOOK"):
        executed.cells = [c for c in executed.cells if c.get("id") != CHECK_CELL_ID]
        executed.metadata.pop("widgets", None)
        nbformat.validate(executed)
        nbformat.write(executed, NOTEBOOK)


def test_committed_notebook_has_outputs() -> None:
    """The copy in the repository reads well on a code host: executed, in order, with the plot."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.source.strip() for c in code)
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom, once"
    assert _errors(nb) == []
    assert _stderr_other_than_the_bar(nb) == []
    with_output = [c for c in code if c.outputs]
    assert len(with_output) >= len(code) - 3  # imports / setup / clean-up may print nothing
    images = [
        out.data["image/png"]
        for c in code
        for out in c.outputs
        if "data" in out and "image/png" in out.data
    ]
    assert len(images) == 1, "the plot is saved as an image"
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(c.get("id") != CHECK_CELL_ID for c in nb.cells)
    size = NOTEBOOK.stat().st_size
    assert size < 400_000, f"outputs should stay readable (no giant frames): {size:,} bytes"


def test_committed_notebook_renders_readably() -> None:
    """What a code host or ``jupyter nbconvert --to html`` shows: the summaries as tables with
    percentages and stated denominators, the plot as an image, no error."""
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nbformat.read(NOTEBOOK, as_version=4))
    assert page.count('class="pd-hlr-summary"') == 2  # summary() and summary(by="country")
    assert "share of the 2,736 answered rows" in page and "share of all 3,000 rows" in page
    assert re.search(r">\d+\.\d %</td>", page)
    assert 'src="data:image/png;base64,' in page
    assert "Traceback" not in page
