"""Run the README's Python blocks, in order, as a new user would, in the current folder:
the sandbox demo, then "A real run" (its token and API address pointed at a local sandbox
through PROVERO_API_TOKEN / PROVERO_BASE_URL, its contacts.csv the bundled sample), the export
and the read-back. Prints what it wrote and read; fails on any error or on a number paid twice.

Usage: python .ci/readme_quickstart.py README.md   (CI: tests/test_readme.py, .ci/wheel)
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from pathlib import Path


def blocks(readme: str) -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)\n```", readme, re.S)


def main(readme_path: str) -> None:
    import pandas as pd

    import pd_hlr
    from pd_hlr import sandbox

    code = blocks(Path(readme_path).read_text(encoding="utf-8"))
    assert len(code) >= 4, f"expected the demo, real-run, export and read-back blocks: {code}"
    os.environ.setdefault("PD_HLR_CACHE", str(Path("hlr_cache").resolve()))
    pd_hlr.datasets.contacts().to_csv("contacts.csv", index=False)  # "your" list
    namespace: dict[str, object] = {}
    with sandbox.serve(token="readme-token") as sb:
        os.environ["PROVERO_API_TOKEN"] = "readme-token"
        os.environ["PROVERO_BASE_URL"] = sb.url
        for i, block in enumerate(code):
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        paid = Counter(sb.stats().charged.values())
    assert set(paid) == {1}, f"a number was paid for more than once: {paid}"
    out = namespace["out"]
    assert isinstance(out, pd.DataFrame) and len(out) == 3000
    parquet = pd.read_parquet("enriched.parquet")
    sheets = pd.read_excel("enriched.xlsx", sheet_name=None)
    csv = pd.read_csv("enriched.csv", dtype=str)
    assert list(sheets) == ["results", "report"], list(sheets)
    assert len(parquet) == len(sheets["results"]) == len(csv) == 3000
    report = parquet.hlr.report()
    print(f"pd_hlr {pd_hlr.__version__} from {Path(pd_hlr.__file__).parent}")
    print(f"README blocks run: {len(code)}; the real run looked up {report.looked_up:,} numbers "
          f"({sum(paid.values()):,} charged once each), cached {report.cached:,}")
    print(f"read back: parquet {parquet.shape}, xlsx sheets {list(sheets)} "
          f"{sheets['results'].shape}, csv {csv.shape}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "README.md")
