"""The README stays true: its schema table is the code's, and CI runs its test command."""

from __future__ import annotations

import re
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
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)\n```", text, re.S)
    assert block and text.index("```bash") < text.index("\n## ")
    commands = block.group(1).strip().splitlines()
    assert len(commands) == 2
    assert "pd-hlr validate" in commands[0] and "--sandbox" in commands[0]
    assert commands[1].endswith("-m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and 'pip install --quiet -e ".[dev]"' in ci
