"""The ``pd-hlr`` command line.

Commands::

    pd-hlr validate INPUT --column phone [--out enriched.parquet] [--detailed] [--roaming]
                    [--route R] [--default-region GB] [--cache DIR | --no-cache] [--budget N]
                    [--sandbox]
    pd-hlr estimate INPUT --column phone [same options]
    pd-hlr cache stats|compact|clear [--cache DIR]
    pd-hlr sandbox [--port 8787] [--token demo] [--latency 0.05] [--balance 1000] [--rate-limit 50]

Exit codes (one readable line on stderr, never a traceback):

==== ==========================================================================
0    success
1    unexpected error (a bug: please report it, with ``--debug`` output)
2    bad input or usage (missing file or column, unreadable file, bad option)
3    insufficient balance (402); everything paid for is in the cache
4    authentication failed (401/403) or no token (``PROVERO_API_TOKEN``)
5    budget exceeded: the run would need more lookups than ``--budget``; nothing sent
6    the API or the network failed after retries
130  interrupted (Ctrl-C); everything already answered is in the cache
==== ==========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_BUG = 1
EXIT_INPUT = 2
EXIT_BALANCE = 3
EXIT_AUTH = 4
EXIT_BUDGET = 5
EXIT_API = 6
EXIT_INTERRUPTED = 130

SANDBOX_TOKEN = "sandbox-demo-token"


class InputError(Exception):
    """Bad input or usage: exit code 2."""


def _add_lookup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CSV or parquet file (or a folder / glob of parquet files)")
    p.add_argument("--column", "-c", required=True, help="column holding the phone numbers")
    p.add_argument("--detailed", action="store_true", help="full HLR payload (detailed mode)")
    p.add_argument("--roaming", action="store_true", help="add roaming checks")
    p.add_argument("--route", default=None, help='routing product, e.g. "standard", "detailed"')
    p.add_argument(
        "--no-msisdn",
        dest="msisdn",
        action="store_false",
        help="send non-canonical numbers as they are (the API's msisdn=false)",
    )
    p.add_argument(
        "--default-region", default=None, help="ISO region for national numbers, e.g. GB"
    )
    p.add_argument(
        "--strict", action="store_true", help="withhold numbers libphonenumber calls invalid"
    )
    p.add_argument("--only-mobile", action="store_true", help="skip numbers certainly not mobile")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="cache folder (default: $PD_HLR_CACHE or ~/.cache/pd_hlr)",
    )
    cache.add_argument("--no-cache", action="store_true", help="do not read or write a cache")
    p.add_argument(
        "--max-age", default=None, help='look cached answers older than this up again, e.g. "30D"'
    )
    p.add_argument("--refresh", action="store_true", help="ignore cached answers")
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the embedded sandbox (synthetic answers, no account needed)",
    )
    p.add_argument(
        "--price",
        default=None,
        type=_price,
        help="price per lookup for the estimate (default 0.006)",
    )


def _price(text: str) -> Decimal:
    """argparse type of ``--price``: a non-negative decimal number (else a usage error, exit 2)."""
    try:
        value = Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation is not a ValueError
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pd-hlr", description="Enrich phone-number tables with HLR lookups (Provero API)."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="look numbers up and write an enriched table")
    _add_lookup_options(v)
    v.add_argument(
        "--out",
        "-o",
        default=None,
        help="output .parquet or .csv (default: INPUT with .hlr.parquet)",
    )
    v.add_argument("--budget", type=int, default=None, help="refuse to spend more lookups than N")
    v.add_argument("--workers", type=int, default=None, help="concurrent requests (default 8)")
    v.add_argument("--rate-limit", type=float, default=None, help="max requests per second")
    v.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )
    v.add_argument(
        "--engine",
        choices=("pandas", "dask"),
        default=None,
        help="pandas (default for files) or dask (default for folders and globs)",
    )

    e = sub.add_parser("estimate", help="count what a run would look up and cost; sends nothing")
    _add_lookup_options(e)

    c = sub.add_parser("cache", help="inspect or maintain the lookup cache")
    c.add_argument("action", choices=("stats", "compact", "clear"))
    c.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="cache folder (default: $PD_HLR_CACHE or ~/.cache/pd_hlr)",
    )

    s = sub.add_parser("sandbox", help="serve the local spec-faithful sandbox API until Ctrl-C")
    import dataclasses

    from .sandbox import Faults

    s.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8787, help="port (0: any free port)")
    s.add_argument("--token", default="demo", help="the Bearer token to accept")
    s.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    s.add_argument("--balance", type=int, default=None, help="lookups before 402")
    s.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    s.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    group = s.add_argument_group("fault knobs (probabilities per request, and their parameters)")
    for f in dataclasses.fields(Faults):
        flag, help_ = "--fault-" + f.name.replace("_", "-"), f.metadata["help"].replace("%", "%%")
        if isinstance(f.default, bool):
            group.add_argument(flag, dest=f.name, action="store_true", help=help_)
        else:
            metavar = "P" if f.metadata["probability"] else "S"
            group.add_argument(
                flag, dest=f.name, type=float, default=f.default, metavar=metavar, help=help_
            )
    return parser


# --- input / output --------------------------------------------------------------------------
def _is_dataset(path: str) -> bool:
    return os.path.isdir(path) or any(ch in path for ch in "*?[")


def read_table(path: str) -> Any:
    """One CSV or parquet file, or a folder of parquet files, as one pandas frame."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"input file not found: {path}")
    suffix = p.suffix.lower()
    try:
        if p.is_dir() or suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".tsv") or suffix == "":
            sep = "\t" if suffix == ".tsv" else ","
            # Phone numbers are text: never let the CSV reader turn them into floats.
            return pd.read_csv(p, sep=sep, dtype=str, keep_default_na=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    raise InputError(f"unsupported input type {suffix!r}: use .csv or .parquet")


OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv")


def check_out_path(path: str) -> None:
    """Refuse an output the run could not write, *before* any lookup is paid for."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"unsupported output type {suffix or path!r}: use .parquet or .csv")


def write_table(frame: Any, path: str, metadata: dict[str, Any] | None = None) -> None:
    check_out_path(path)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() in (".parquet", ".pq"):
        frame.hlr.to_parquet(p, metadata=metadata)
    else:
        frame.to_csv(p, index=False)


def _default_out(path: str) -> str:
    p = Path(path.rstrip("/"))
    if p.is_dir():
        return str(p.parent / f"{p.name}.hlr")
    if _is_dataset(path):  # a glob: name the output after its fixed part, never inside it
        parts = p.parts
        k = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        folder = Path(*parts[:k]) if k else Path(".")
        stem = parts[k].split("*")[0].split("?")[0].split("[")[0].rstrip(".-_")
        if k == len(parts) - 1 and stem:
            return str(folder / f"{stem}.hlr")
        return str(folder.parent / f"{folder.resolve().name or 'output'}.hlr")
    return str(p.with_name(p.stem + ".hlr.parquet"))


# --- the client: token or sandbox -----------------------------------------------------------
@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    from .client import HLRClient

    kwargs: dict[str, Any] = {}
    if getattr(args, "workers", None):
        kwargs["workers"] = args.workers
    if getattr(args, "rate_limit", None):
        kwargs["rate_limit"] = args.rate_limit
    if args.sandbox:
        from . import sandbox

        _loud(
            "SANDBOX MODE: answers come from the embedded sandbox and are SYNTHETIC. "
            "Nothing was checked against a real network."
        )
        with (
            sandbox.serve(token=SANDBOX_TOKEN) as sb,
            HLRClient(token=SANDBOX_TOKEN, base_url=sb.url, **kwargs) as client,
        ):
            yield client
        return
    if not os.environ.get("PROVERO_API_TOKEN"):
        raise _NoToken()
    with HLRClient(**kwargs) as client:
        yield client


class _NoToken(Exception):
    pass


def _loud(message: str) -> None:
    import textwrap

    lines = textwrap.wrap(message, 76)
    width = max(len(line) for line in lines) + 4
    bar = "!" * width
    body = "\n".join(f"! {line.ljust(width - 4)} !" for line in lines)
    print(f"{bar}\n{body}\n{bar}", file=sys.stderr, flush=True)


def _settings_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "detailed": args.detailed,
        "roaming": args.roaming,
        "route": args.route,
        "msisdn": args.msisdn,
        "default_region": args.default_region,
        "strict": args.strict,
        "only_mobile": args.only_mobile,
        "max_age": args.max_age,
        "refresh": args.refresh,
    }
    if args.price is not None:
        kw["price"] = args.price
    return kw


def _cache_arg(args: argparse.Namespace) -> Any:
    if getattr(args, "no_cache", False):
        return False
    return args.cache


def _require_column(frame: Any, args: argparse.Namespace) -> None:
    if args.column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise InputError(f"no column {args.column!r} in {args.input}; columns: {columns}")


# --- commands ---------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    engine = args.engine or ("dask" if _is_dataset(args.input) else "pandas")
    out_path = args.out or _default_out(args.input)
    if engine == "dask":
        from . import dask as hlr_dask

        return hlr_dask.cli_validate(args, out_path, _client, _settings_kwargs(args))
    check_out_path(out_path)
    frame = read_table(args.input)
    _require_column(frame, args)
    kwargs = _settings_kwargs(args)
    with _client(args) as client:
        out = frame.hlr.validate(
            args.column,
            client=client,
            cache=_cache_arg(args),
            budget=args.budget,
            progress=args.progress,
            **kwargs,
        )
    write_table(out, out_path)
    print(out.hlr.summary().to_string(), file=sys.stdout)
    print(f"wrote {len(out):,} rows to {out_path}", file=sys.stderr)
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace) -> int:
    frame = read_table(args.input)
    _require_column(frame, args)
    kwargs = _settings_kwargs(args)
    # With --sandbox, count against the sandbox's cache namespace (what `validate --sandbox`
    # fills); without it, against the real API's (PROVERO_BASE_URL or the vendor's). No token
    # is needed: nothing is sent.
    client_cm = _client(args) if args.sandbox else contextlib.nullcontext(None)
    with client_cm as client:
        est = frame.hlr.estimate(args.column, client=client, cache=_cache_arg(args), **kwargs)
    for key, value in est.to_dict().items():
        print(f"{key:>12}: {value}")
    return EXIT_OK


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import HLRCache, default_cache_path

    cache = HLRCache(args.cache or default_cache_path())
    if args.action == "stats":
        for key, value in cache.stats().items():
            print(f"{key:>12}: {value}")
    elif args.action == "compact":
        for key, value in cache.compact().items():
            print(f"{key:>12}: {value}")
    else:
        print(f"removed {cache.clear()} files from {cache.path}")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from . import sandbox

    names = [f.name for f in dataclasses.fields(sandbox.Faults)]
    faults = sandbox.Faults(**{name: getattr(args, name) for name in names})
    knobs = {"latency": args.latency, "balance": args.balance, "rate_limit": args.rate_limit}
    with sandbox.serve(
        args.token, args.port, faults=faults, seed=args.seed, host=args.host, **knobs
    ) as sb:
        print(f"Provero sandbox listening on {sb.url}  (endpoint {sb.endpoint})", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            st = sb.stats()
            print(f"\nstopped: {st.requests} requests, {st.total_charged} charged", flush=True)
    return EXIT_OK


COMMANDS = {
    "validate": cmd_validate,
    "estimate": cmd_estimate,
    "cache": cmd_cache,
    "sandbox": cmd_sandbox,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pd-hlr`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import errors

    try:
        import pd_hlr  # noqa: F401  (registers the accessor)

        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("pd-hlr: interrupted; everything already answered is in the cache", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        code, message = _classify(exc, errors)
        print(f"pd-hlr: error: {message}", file=sys.stderr)
        return code


def _classify(exc: BaseException, errors: Any) -> tuple[int, str]:
    one_line = " ".join(str(exc).split())
    if isinstance(exc, _NoToken):
        return EXIT_AUTH, (
            "no API token: set PROVERO_API_TOKEN (or pass --sandbox to try the embedded "
            "sandbox with synthetic answers)"
        )
    if isinstance(exc, InputError | KeyError | FileNotFoundError):
        return EXIT_INPUT, one_line.strip("\"'")
    if isinstance(exc, errors.BudgetExceededError):
        return EXIT_BUDGET, one_line
    if isinstance(exc, errors.InsufficientBalanceError):
        notes = " ".join(getattr(exc, "__notes__", []))
        return EXIT_BALANCE, f"{one_line} {notes}".strip()
    if isinstance(exc, errors.AuthenticationError):
        return EXIT_AUTH, one_line
    if isinstance(exc, errors.HLRError):
        return EXIT_API, one_line
    if isinstance(exc, ValueError | TypeError):
        return EXIT_INPUT, one_line
    return EXIT_BUG, f"{type(exc).__name__}: {one_line} (re-run with --debug for a traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
