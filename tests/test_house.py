"""House rules the code keeps, checked on its syntax tree (``ast``): every module says what it
is for in a short docstring (the long story lives in ``docs/internals/``), and no function is
long enough to hide a second job (the retry policy's, shorter still).

The layer map is checked by ``lint-imports`` (``.importlinter``), not here."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pd_hlr"

#: A module docstring: at most this many lines of text (blank lines included), plus at most
#: EXAMPLE_LINES of doctest example (``>>>`` blocks, which run under --doctest-modules).
DOC_LINES = 15
EXAMPLE_LINES = 12
#: The longest function anywhere in the package, and in the retry policy.
FUNCTION_LINES = 120
LIMITS = {"pd_hlr/retry.py": 80}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def doc_lines(doc: str) -> tuple[int, int]:
    """(text lines, example lines) of a docstring: an example is a ``>>>`` line and the lines
    after it up to the next blank line; everything else is text, blank lines included."""
    text = example = 0
    in_example = False
    lines = doc.strip("\n").splitlines()
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
        elif not stripped:
            in_example = False
        if in_example:
            example += 1
        else:
            text += 1
    return text, example


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines from ``def`` to its last line) of every function, nested ones and
    methods included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield f"{prefix}{node.name}", node.end_lineno - node.lineno + 1
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_module_docstring_is_short(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    assert doc, f"{rel(path)} has no module docstring: say what the module is for"
    text, example = doc_lines(doc)
    assert text <= DOC_LINES, (
        f"{rel(path)}'s docstring has {text} lines of text (at most {DOC_LINES}): keep what "
        "the module is for and its invariants; move the long story to docs/internals/"
    )
    assert example <= EXAMPLE_LINES, f"{rel(path)}: a {example}-line example; keep one short"


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_no_function_is_too_long(path: Path) -> None:
    limit = LIMITS.get(rel(path), FUNCTION_LINES)
    long = {name: n for name, n in functions(ast.parse(path.read_text())) if n > limit}
    assert not long, f"{rel(path)}: functions over {limit} lines: {long}"


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_the_docs_a_module_docstring_points_to_exist(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    for page in re.findall(r"docs/[\w/.-]+\.md", doc):
        assert (ROOT / page).is_file(), f"{rel(path)} points to {page}, which does not exist"


def test_the_measures_measure() -> None:
    """The rules fail what they should: a long docstring, a long function."""
    assert doc_lines("One.\n\nTwo.\n\n>>> 1 + 1\n2\n\nThree.") == (6, 2)
    body = "\n".join(f"    x = {i}" for i in range(130))
    tree = ast.parse(f"class A:\n  def f(self):\n{body}\n\ndef g():\n    return 1\n")
    assert dict(functions(tree)) == {"A.f": 131, "g": 2}
