"""Mutation testing of the money-critical modules: one small change at a time, the tests run
against each, and a change the tests do not notice (a *survivor*) is reported.

Why a runner of our own: mutmut 3 and cosmic-ray both mutate a copy of the tree and run the
suite there, but the modules under test here are exercised through real subprocesses (kill -9,
SIGSTOP, a second claimant), which import ``pd_hlr`` from the current directory; this runner
does the same in a scratch copy of the repository, one copy per job, so the working tree is never
modified and a crash never leaves a mutant behind.

Each target names a module, the top-level definitions mutated (``None``: all), and the test
files (or test ids) run against each mutant (``-x``, slow tests excluded). Operators (one
change per mutant):

- comparisons: ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``in``/``not in``, ``is``/``is not``
- arithmetic and bit operators: ``+``/``-``, ``*``/``/``, ``//``/``/``, ``|``/``&``
- ``and``/``or``; ``not x`` → ``x``
- numbers ``n`` → ``n + 1``; ``True``/``False`` swapped; short str/bytes literals (< 16
  characters, not docstrings, log or error messages) → ``"XX" + s``
- a call statement (``os.fsync(fd)``, ``time.sleep(s)``) → ``pass``
- ``continue``/``break`` swapped; ``return x`` → ``return None``

A line ending in ``# pragma: no mutate`` is left alone. Results (with each survivor's line and
change) go to ``--out`` as JSON; ``docs/mutation.md`` lists the survivors and why each is
equivalent.

Usage::

    python tools/mutation.py claims journal ratelimit retry-policy --jobs 2
    python tools/mutation.py claims --list          # the mutants, without running them
    python tools/mutation.py --self-test            # the operators on a small module (CI)
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (module, top-level definitions mutated or None for all, test files)
TARGETS: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "claims": ("pd_hlr/cache/claims.py", None, ("tests/test_claims.py",)),
    "journal": ("pd_hlr/cache/journal.py", None, ("tests/test_journal.py",)),
    "cache-files": (
        "pd_hlr/cache/folder.py",
        ("read_all", "open_regular", "read_regular"),
        (
            "tests/test_journal.py",
            "tests/test_claims.py",
            "tests/test_cache_ownership.py::test_open_regular_refuses_links_and_fifos_without_blocking",
        ),
    ),
    "writer": (
        "pd_hlr/cache/store.py",
        ("_Slot", "_await", "_group_failed", "CacheWriter"),
        (
            "tests/test_group_commit.py",
            "tests/test_journal.py::test_a_cache_opened_with_fsync_syncs_its_journal_lines_and_parts",
        ),
    ),
    "sequence": (
        "pd_hlr/cache/folder.py",
        ("Sequence", "read_sequence"),
        (
            *(
                f"tests/test_group_commit.py::{t}"
                for t in (
                    "test_a_sequence_step_takes_a_range_and_writes_its_last_value",
                    "test_a_reader_waits_for_a_step_and_sees_its_whole_range",
                    "test_a_sequence_closes_its_descriptor_even_on_descriptor_zero",
                    "test_raising_the_sequence_waits_for_its_lock",
                    "test_a_new_writer_continues_the_sequence_above_everything_stored",
                    "test_answers_queued_behind_a_write_go_in_one_write_and_one_sequence_step",
                    "test_many_threads_adding_at_once_each_land_once_with_a_unique_seq",
                )
            ),
            "tests/test_cache_hardening.py::"
            "test_the_sequence_a_reader_takes_waits_for_the_entry_written_under_it",
        ),
    ),
    "object-claims": (
        "pd_hlr/cache/objects.py",
        ("ObjectClaims", "ObjectClaimedLookups", "_Unchanged"),
        (
            "tests/test_cache_s3_claims.py",
            *(
                f"tests/test_cache_s3.py::{t}"
                for t in (
                    "test_claims_are_disjoint_and_given_back",
                    "test_claims_of_another_key_do_not_conflict",
                    "test_a_stale_claimer_is_taken_over_after_one_lease_by_the_waiter_s_clock",
                    "test_a_renewing_claimer_is_waited_for",
                    "TestObjectStore::test_cold_then_warm_pays_once",
                )
            ),
        ),
    ),
    "ratelimit": (
        "pd_hlr/ratelimit.py",
        None,
        ("tests/test_ratelimit.py", "tests/test_ratelimit_real.py"),
    ),
    "adaptive": (
        "pd_hlr/adaptive.py",
        ("AdaptiveRateLimiter",),
        tuple(  # all but the benchmark's small mode (the scratch copy has no benchmarks/)
            f"tests/test_adaptive.py::{t}"
            for t in (
                    "test_unthrottled_until_the_first_signal",
                    "test_with_a_ceiling_it_starts_at_the_ceiling",
                    "test_a_signal_decreases_to_beta_times_the_accepted_rate",
                    "test_the_estimate_keeps_its_headroom_and_never_exceeds_the_current_rate",
                    "test_signals_of_one_congestion_event_decrease_once",
                    "test_a_run_refused_from_its_first_request_does_not_fall_to_the_floor",
                    "test_never_below_the_floor",
                    "test_the_default_floor_is_half_a_request_a_second",
                    "test_ten_requests_in_the_window_are_enough_to_measure_a_pace",
                    "test_the_module_exports_what_it_names",
                    "test_a_fresh_limiter_reads_well",
                    "test_answers_are_counted_over_exactly_the_window",
                    "test_the_send_log_stays_bounded",
                    "test_reset_peak_forgets_the_peak_and_the_signals_not_the_pace",
                    "test_the_real_sleep_sleeps",
                    "test_one_refused_lookup_does_not_set_a_pace",
                    "test_a_ceiling_below_the_floor_wins",
                    "test_the_rate_climbs_while_answers_flow",
                    "test_the_ceiling_is_never_exceeded",
                    "test_a_long_run_keeps_only_the_last_window_of_times",
                    "test_the_rate_stays_between_floor_and_ceiling",
                    "test_it_follows_a_limit_that_changes_mid_run",
                    "test_concurrent_feedback_is_counted_exactly",
                    "test_unthrottled_sends_and_answers_from_many_threads_are_all_counted",
                    "test_a_slot_reserved_before_a_decrease_is_reserved_again",
                    "test_bad_arguments",
                    "test_the_client_finds_a_hidden_limit_and_pays_once",
                    "test_quota_answers_are_limit_signals_and_not_paid",
                    "test_the_fixed_limiter_is_still_there",
                    "test_a_stop_ends_the_wait_for_a_slot",
            )
        ),
    ),
    "retry-policy": (
        "pd_hlr/retry.py",
        ("Decision", "RetryPolicy", "_resume_later", "_duration", "CircuitBreaker"),
        (
            "tests/test_retry_policy_pins.py",
            *(
                f"tests/test_retry.py::{t}"
                for t in (
                    "test_backoff_is_full_jitter_under_an_exponential_ceiling",
                    "test_decide_retries_gives_up_and_stops",
                    "test_a_retry_after_beyond_the_cap_stops_the_run",
                    "test_bad_policies_are_refused",
                    "test_breaker_trips_on_consecutive_failures_of_one_kind",
                    "test_readme_retry_table_is_generated_from_the_policy",
                    "test_kinds_table_says_what_it_does",
                    "test_the_resume_time_is_read_from_the_injected_wall_clock",
                    "test_the_wall_clock_is_neither_shown_nor_compared",
                )
            ),
        ),
    ),
}

_COMPARE = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
    ast.Pow: ast.Mult,
}
#: Calls whose arguments are messages, not behaviour.
_MESSAGE_CALLS = {"debug", "info", "warning", "error", "exception", "warn"}


@dataclass(frozen=True)
class Mutant:
    index: int
    line: int
    change: str
    source_line: str


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if not isinstance(parent, ast.Expr):
        return False
    holder = parents.get(parent)
    body = getattr(holder, "body", None)
    return bool(body) and body[0] is parent


def _in_message(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.JoinedStr | ast.Raise):
            return True
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in _MESSAGE_CALLS or name.endswith("Error"):
                return True
    return False


def _sites(tree: ast.Module, only: tuple[str, ...] | None, lines: list[str]) -> list[tuple]:
    """Every mutation site: (node, kind, detail), in source order."""
    parents: dict[ast.AST, ast.AST] = {}
    for p in ast.walk(tree):
        for c in ast.iter_child_nodes(p):
            parents[c] = p
    roots = [
        n
        for n in tree.body
        if only is None
        or (isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name in only)
        or (
            isinstance(n, ast.Assign | ast.AnnAssign)
            and any(
                getattr(t, "id", None) in only
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            )
        )
    ]
    if only is None:
        roots = [n for n in roots if not isinstance(n, ast.Import | ast.ImportFrom)]
    # type annotations and decorators are not behaviour (annotations are strings at run time)
    skip: set[int] = set()
    for node in ast.walk(tree):
        hidden: list[ast.AST | None] = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            hidden.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            hidden.append(node.returns)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            hidden.extend(node.decorator_list)
        for h in hidden:
            if h is not None:
                skip.update(id(n) for n in ast.walk(h))
    sites: list[tuple] = []
    for root in roots:
        for node in ast.walk(root):
            if id(node) in skip:
                continue
            line = getattr(node, "lineno", None)
            if line is not None and lines[line - 1].rstrip().endswith("# pragma: no mutate"):
                continue
            if isinstance(node, ast.Compare):
                for i, op in enumerate(node.ops):
                    if type(op) in _COMPARE:
                        sites.append((node, "compare", i))
            elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINOP:
                sites.append((node, "binop", None))
            elif isinstance(node, ast.BoolOp):
                sites.append((node, "boolop", None))
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                sites.append((node, "not", None))
            elif isinstance(node, ast.Constant):
                v = node.value
                if isinstance(v, bool):
                    sites.append((node, "bool", None))
                elif isinstance(v, int | float) and not isinstance(v, bool):
                    sites.append((node, "number", None))
                elif (
                    isinstance(v, str | bytes)
                    and len(v) < 16
                    and not _is_docstring(node, parents)
                    and not _in_message(node, parents)
                ):
                    sites.append((node, "string", None))
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                sites.append((node, "delete", None))
            elif isinstance(node, ast.Continue | ast.Break):
                sites.append((node, "loop", None))
            elif isinstance(node, ast.Return) and node.value is not None:
                none = isinstance(node.value, ast.Constant) and node.value.value is None
                if not none:
                    sites.append((node, "return", None))
    sites.sort(key=lambda s: (getattr(s[0], "lineno", 0), getattr(s[0], "col_offset", 0)))
    return sites


class _Apply(ast.NodeTransformer):
    """Apply the mutation at one site (found by identity in a deep copy)."""

    def __init__(self, target: ast.AST, kind: str, detail) -> None:
        self.target, self.kind, self.detail = target, kind, detail
        self.change = ""

    def visit(self, node: ast.AST):
        if node is not self.target:
            return self.generic_visit(node)
        k = self.kind
        if k == "compare":
            old = node.ops[self.detail]
            node.ops[self.detail] = _COMPARE[type(old)]()
            self.change = f"{type(old).__name__} -> {type(node.ops[self.detail]).__name__}"
        elif k == "binop":
            old = node.op
            node.op = _BINOP[type(old)]()
            self.change = f"{type(old).__name__} -> {type(node.op).__name__}"
        elif k == "boolop":
            old = node.op
            node.op = ast.Or() if isinstance(old, ast.And) else ast.And()
            self.change = f"{type(old).__name__} -> {type(node.op).__name__}"
        elif k == "not":
            self.change = "not x -> x"
            return node.operand
        elif k == "bool":
            self.change = f"{node.value} -> {not node.value}"
            node.value = not node.value
        elif k == "number":
            self.change = f"{node.value!r} -> {node.value + 1!r}"
            node.value = node.value + 1
        elif k == "string":
            new = (b"XX" if isinstance(node.value, bytes) else "XX") + node.value
            self.change = f"{node.value!r} -> {new!r}"
            node.value = new
        elif k == "delete":
            self.change = f"delete {ast.unparse(node.value)[:60]}"
            return ast.copy_location(ast.Pass(), node)
        elif k == "loop":
            new = ast.Break() if isinstance(node, ast.Continue) else ast.Continue()
            self.change = f"{type(node).__name__.lower()} -> {type(new).__name__.lower()}"
            return ast.copy_location(new, node)
        elif k == "return":
            self.change = f"return {ast.unparse(node.value)[:40]} -> return None"
            node.value = ast.Constant(None)
        return node


def mutants(path: Path, only: tuple[str, ...] | None) -> list[tuple[Mutant, str]]:
    """Every mutant of the module at ``path``: (description, mutated source)."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    out = []
    for i, (node, kind, detail) in enumerate(_sites(tree, only, lines)):
        # locate the same node in a fresh copy by walking both trees in step
        fresh = copy.deepcopy(tree)
        pairs = zip(ast.walk(tree), ast.walk(fresh), strict=True)
        twin = next(f for o, f in pairs if o is node)
        applier = _Apply(twin, kind, detail)
        mutated = ast.fix_missing_locations(applier.visit(fresh))
        text = ast.unparse(mutated)
        try:
            compile(text, str(path), "exec")
        except SyntaxError:  # pragma: no cover - e.g. a delete leaving an empty body
            continue
        line = getattr(node, "lineno", 0)
        out.append((Mutant(i, line, applier.change, lines[line - 1].strip()), text))
    return out


def _pytest(copy_dir: Path, tests: tuple[str, ...], timeout: float) -> str:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-m",
        "not slow and not soak",
        *tests,
    ]
    env = {**os.environ, "PYTHONPATH": str(copy_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            cmd, cwd=copy_dir, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if proc.returncode == 0 else "killed"


def _scratch() -> Path:
    d = Path(tempfile.mkdtemp(prefix="pd-hlr-mutation-"))
    for name in ("pd_hlr", "tests", "docs"):  # tests read the docs' tables
        shutil.copytree(ROOT / name, d / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, d / name)
    return d


def run_target(name: str, jobs: int, limit: int | None, indices: set[int] | None = None) -> dict:
    module, only, tests = TARGETS[name]
    found = mutants(ROOT / module, only)
    if indices is not None:
        found = [(m, t) for m, t in found if m.index in indices]
    if limit is not None:
        found = found[:limit]
    copies = [_scratch() for _ in range(max(1, jobs))]
    try:
        # the baseline: the unparsed, unmutated module must pass (and times the suite)
        original = (ROOT / module).read_text()
        (copies[0] / module).write_text(ast.unparse(ast.parse(original)))
        t0 = time.monotonic()
        if _pytest(copies[0], tests, 900) != "survived":
            raise SystemExit(f"{name}: the tests fail without any mutation; fix them first")
        timeout = max(30.0, 5 * (time.monotonic() - t0))
        free = list(copies)
        results: list[tuple[Mutant, str]] = []

        def one(item: tuple[Mutant, str]) -> tuple[Mutant, str]:
            mutant, text = item
            d = free.pop()
            try:
                (d / module).write_text(text)
                return mutant, _pytest(d, tests, timeout)
            finally:
                (d / module).write_text(original)
                free.append(d)

        pool = ThreadPoolExecutor(max_workers=len(copies))
        try:
            for mutant, verdict in pool.map(one, found):
                results.append((mutant, verdict))
                mark = {"killed": ".", "timeout": "T", "survived": "S"}[verdict]
                print(mark, end="", flush=True)
        finally:  # Ctrl-C: run no further mutant (the one running finishes, then is undone)
            pool.shutdown(wait=True, cancel_futures=True)
        print()
    finally:
        for d in copies:
            shutil.rmtree(d, ignore_errors=True)
    survivors = [m for m, v in results if v == "survived"]
    return {
        "target": name,
        "module": module,
        "tests": list(tests),
        "total": len(results),
        "killed": len(results) - len(survivors),
        "survivors": [m.__dict__ for m in survivors],
    }


def self_test() -> None:
    """The operators on a tiny module (no tests run): each kind of change is produced."""
    src = (
        "def f(xs, n=5):\n"
        "    for x in xs:\n"
        "        if x == n and not x > 1:\n"
        "            continue\n"
        "        g(x + 1, True)\n"
        "    return n\n"
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text(src)
        changes = [m.change for m, _ in mutants(p, None)]
    expected = {"Eq -> NotEq", "Gt -> GtE", "And -> Or", "not x -> x", "continue -> break"}
    expected |= {"Add -> Sub", "True -> False", "5 -> 6", "return n -> return None"}
    missing = expected - set(changes)
    assert not missing, missing
    assert any(c.startswith("delete g(") for c in changes), changes
    print(f"self-test: {len(changes)} mutants, every operator present")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (scratch copies)")
    ap.add_argument("--limit", type=int, help="only the first N mutants of each target")
    ap.add_argument(
        "--indices", help="only these mutants (comma-separated numbers, as --list shows them)"
    )
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    ap.add_argument("--self-test", action="store_true", help="check the operators and exit")
    args = ap.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        ap.error(f"unknown target(s) {sorted(unknown)}; choose from {list(TARGETS)}")
    if args.self_test:
        self_test()
        return 0
    report = []
    for name in args.targets or list(TARGETS):
        module, only, _ = TARGETS[name]
        if args.list:
            for m, _ in mutants(ROOT / module, only):
                print(f"{name} #{m.index} line {m.line}: {m.change}    {m.source_line}")
            continue
        print(f"{name}: {module}", flush=True)
        indices = {int(i) for i in args.indices.split(",")} if args.indices else None
        result = run_target(name, args.jobs, args.limit, indices)
        report.append(result)
        score = 100 * result["killed"] / max(result["total"], 1)
        print(f"{name}: {result['killed']}/{result['total']} killed ({score:.1f} %)")
        for s in result["survivors"]:
            print(
                f"  survived #{s['index']}: line {s['line']}: {s['change']}    {s['source_line']}"
            )
    if args.out and report:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
