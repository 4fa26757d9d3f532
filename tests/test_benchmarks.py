"""Every benchmark script's small mode runs (CI): the scripts import and finish, and a warm
cache sends nothing. Their figures are for ``benchmarks/README.md``, not for tests; that every
script in ``benchmarks/`` has such a test is checked here too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .benchrun import ROOT, run_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_dask.py", "bench_polars.py"])
def test_engine_benchmark_small_mode_runs(script: str) -> None:
    pytest.importorskip("dask")
    pytest.importorskip("polars")
    run = run_benchmark(script, "--small", cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "requests sent to the sandbox (should be 0 on a warm cache): 0" in run.stdout
    assert "20,000" in run.stdout


@pytest.mark.slow
def test_s3_benchmark_small_mode_runs() -> None:
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    run = run_benchmark("bench_s3.py", "--small", cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "requests sent to the sandbox (should be 0 on a warm cache): 0" in run.stdout


#: The other scripts' small modes (what CI runs of them) and a line each must print.
SMALL_MODES = {
    "bench_cli.py": (["--rounds", "1"], "SUMMARY"),
    "bench_client.py": (["--seconds", "1"], "total"),
    "bench_ratelimit.py": (["--seconds", "1"], "SUMMARY"),
    # its exit code also says whether it met 500 req/s: a speed, so not asserted here
    "bench_sandbox.py": (["--seconds", "1"], "statuses {200: "),
    "bench_enrich.py": (["--rows", "2000", "--distinct", "500", "--sample", "500"], "SUMMARY"),
    "bench_normalize.py": (
        ["--rows", "20000", "--distinct", "4000", "--sample", "5000", "--repeat", "1"],
        "rows where the keys differ from the per-pair baseline: 0",
    ),
    "bench_warm.py": (
        ["--rows", "5000", "--distinct", "1000", "--rc-distinct", "500", "--rc-sample", "200"],
        "SUMMARY",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL_MODES))
def test_benchmark_small_mode_runs(script: str) -> None:
    args, expected = SMALL_MODES[script]
    run = run_benchmark(script, *args)
    assert run.returncode == 0 or script == "bench_sandbox.py", run.stderr[-3000:]
    assert expected in run.stdout + run.stderr, run.stdout[-3000:]


@pytest.mark.slow
def test_cache_benchmark_small_mode_runs() -> None:
    """Seeded through the cache's writer (no cold runs): well under a minute."""
    run = run_benchmark("bench_cache.py", "--small", cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "no lookups (seeded by the cache's writer, no HTTP)" in run.stdout
    assert "10,000 rows / 2,000 distinct" in run.stdout  # the warm table (its children assert
    assert "after run 3" in run.stdout  # that nothing was sent and all rows came from the cache)
    assert run.stdout.count("SUMMARY ") == 2


@pytest.mark.slow
def test_s3_team_proof_small_mode_runs() -> None:
    """Its bounds (paid once; paid twice at most the workers / one claim chunk) are checked by
    the script itself, which exits 1 when one does not hold."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    run = run_benchmark("proof_s3_team.py", "--small", cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "bounds: all held" in run.stdout
    assert "| requests: 0" in run.stdout  # the warm fourth process sent nothing


# --- every script has a small mode that a test runs -----------------------------------------------
def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of ``tree`` (a script named only in prose is not run)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _named_in_code(path: Path) -> set[str]:
    """The string literals and imported module names in a test module's code (docstrings and
    comments left out)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def benchmark_scripts() -> list[str]:
    """The scripts a reader of ``benchmarks/README.md`` may run for a figure."""
    here = ROOT / "benchmarks"
    return sorted(p.name for p in [*here.glob("bench_*.py"), *here.glob("proof_*.py")])


def modules_running(script: str) -> list[str]:
    """Test modules whose code names ``script``: a string (``"bench_x.py"``, a path ending in
    it, ``"bench_x"``; in a parametrize list too) or an import of ``bench_x``;
    ``tests/test_bench*.py`` and the rest alike."""
    stem = script.removesuffix(".py")
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        names = _named_in_code(path)
        if any(n in (script, stem) or n.endswith(("/" + script, "/" + stem)) for n in names):
            found.append(path.name)
    return found


def test_every_benchmark_script_has_a_small_mode_a_test_runs() -> None:
    """A new ``benchmarks/bench_*.py`` or ``proof_*.py`` without a test running its small mode
    fails CI, so every published figure stays reproducible."""
    scripts = benchmark_scripts()
    assert {"bench_cache.py", "proof_s3_team.py", "bench_s3.py"} <= set(scripts)
    missing = [s for s in scripts if not modules_running(s)]
    assert not missing, (
        f"no test runs the small mode of {missing}: add one to tests/test_benchmarks.py "
        "(SMALL_MODES) or to a tests/test_bench*.py of its own"
    )


def test_the_small_mode_tests_name_scripts_that_exist() -> None:
    assert set(SMALL_MODES) <= set(benchmark_scripts())


def test_the_coverage_check_ignores_prose(tmp_path: Path) -> None:
    """A script named in a docstring is not a test running it; named in code, it is."""
    prose = tmp_path / "test_prose.py"
    prose.write_text('"""Figures in ``benchmarks/bench_x.py``."""\n# bench_x.py\n')
    code = tmp_path / "test_code.py"
    code.write_text('"""Doc."""\nARGS = ["benchmarks/bench_x.py", "--small"]\n')
    assert not any(s.endswith("bench_x.py") for s in _named_in_code(prose))
    assert "benchmarks/bench_x.py" in _named_in_code(code)
    imports = tmp_path / "test_imports.py"
    imports.write_text("import bench_y\nfrom bench_z import main\n")
    assert {"bench_y", "bench_z"} <= _named_in_code(imports)
