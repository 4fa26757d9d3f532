"""tools/mutation.py's small mode (CI runs it): every operator produces its mutant, and each
target's module and test files exist."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "tools" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_operator_produces_its_mutant():
    _tool().self_test()


def test_every_target_names_existing_code_and_tests():
    tool = _tool()
    for module, only, tests in tool.TARGETS.values():
        assert (ROOT / module).is_file()
        assert all((ROOT / t.split("::")[0]).is_file() for t in tests)
        text = (ROOT / module).read_text()
        assert tool._sites(tool.ast.parse(text), only, text.splitlines()), module
        if only is not None:  # every named definition exists
            assert all(f"class {n}" in text or f"def {n}" in text for n in only)
