"""A griffe extension for the docs site: docstring examples (``>>>`` lines and their output) are
shown as Python console code blocks, not read as Markdown (where ``x["a"]["b"]`` is a link)."""

from __future__ import annotations

from typing import Any

import griffe


def fence(text: str) -> str:
    """Wrap every run of doctest lines (a ``>>>`` line up to the next blank line) in a
    ```` ```pycon ```` fence at its indentation.

    >>> print(fence("Intro.\\n\\n>>> 1 + 1\\n2\\n\\nMore."))
    Intro.
    <BLANKLINE>
    ```pycon
    >>> 1 + 1
    2
    ```
    <BLANKLINE>
    More.
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctests of every docstring griffe loads."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence(obj.docstring.value)
