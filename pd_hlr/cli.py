"""The ``pd-hlr`` command line: ``validate``, ``estimate``, ``cache`` and ``sandbox``.

``pd-hlr --help`` (and each command's ``--help``, with examples) lists the options. Errors are
one readable line on stderr (``--debug`` shows the traceback); the exit codes are
:data:`EXIT_CODES`, which also renders the docs' exit-code table (:func:`exit_codes_markdown`).

Building the parser imports nothing heavy: the sandbox's options are generated from
:class:`pd_hlr.sandbox.Faults` (a light import: the answers' libphonenumber geocoder and
carrier tables load on the first answer), and the input readers, the cache, the client and
Dask are imported by the command that needs them.

>>> main(["cache", "stats", "--cache", cache_dir])  # doctest: +ELLIPSIS
           path: ...
        entries: 0
...
0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ._io import InputError
from ._spec import DEFAULT_BASE_URL, ENDPOINT_PATH, ROUTES
from .settings import (
    AMBIGUOUS_CHOICES,
    BASE_URL_ENV,
    CACHE_ENV,
    DEFAULT_PRICE,
    DEFAULT_RETRY_TEMPORARY,
    DEFAULT_WORKERS,
    OPTIONS,
    RUN_OBJECTS,
    TOKEN_ENV,
    parse_max_age,
    parse_price,
    parse_region,
    parse_retry_temporary,
)

__all__ = ["EXIT_CODES", "InputError", "build_parser", "exit_codes_markdown", "main"]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_INPUT = 2
EXIT_BALANCE = 3
EXIT_AUTH = 4
EXIT_BUDGET = 5
EXIT_API = 6
EXIT_HANGUP = 129  # 128 + SIGHUP
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader that left early

#: Every exit code and its meaning: the one source of ``--help``'s list and the docs' table.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_BUG: "unexpected error (a bug: please report it, with the `--debug` output)",
    EXIT_INPUT: (
        "bad input or usage: missing file or column, unreadable file, bad option, an output "
        "that exists (`--force`), result-named input columns (`--prefix`), a cache folder "
        "that cannot be written or does not exist, an engine whose extra is not installed "
        "(`pip install 'pd-hlr[polars]'`), an input the engine cannot read"
    ),
    EXIT_BALANCE: "insufficient balance (402); everything paid for is in the cache",
    EXIT_AUTH: f"authentication failed (401/403), or no token (`{TOKEN_ENV}`)",
    EXIT_BUDGET: "budget exceeded (`--budget`); nothing was sent",
    EXIT_API: (
        "the API or the network failed after retries, or the API is unavailable (too many "
        "failures in a row, or a `Retry-After` too long); everything answered is in the cache. "
        "Also when a run finished but some numbers failed after retries: the output is written "
        "(their rows have `hlr_source` error) and a re-run looks up only those"
    ),
    EXIT_HANGUP: (
        "stopped by SIGHUP (the terminal closed) during the lookups; as for 130"
    ),
    EXIT_INTERRUPTED: (
        "interrupted (Ctrl-C); the answers in flight are awaited and everything answered is in "
        "the cache: a re-run continues with the rest"
    ),
    EXIT_PIPE: (
        "standard output was closed early (e.g. piped into `head`); the command itself finished"
    ),
    EXIT_TERMINATED: (
        "stopped by SIGTERM (`timeout`, `docker stop`, systemd, Kubernetes, Airflow) during the "
        "lookups; as for 130"
    ),
}

#: The token of ``--sandbox`` runs: the embedded sandbox's, not a secret.
SANDBOX_TOKEN = "sandbox-demo-token"


def exit_codes_markdown() -> str:
    """The exit-code table of the docs (docs/guide/cli.md), from :data:`EXIT_CODES`.

    >>> exit_codes_markdown().splitlines()[2]
    '| 0 | success |'
    """
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])


# --- the parser ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Every parser keeps the line breaks of its description and examples."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def _number_type(kind: type, test: Callable[[Any], bool], want: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, ArithmeticError):
            raise argparse.ArgumentTypeError(f"must be {want}, not {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {want}, not {text!r}")
        return value

    parse.__name__ = want  # argparse names the type in some messages
    return parse


_count = _number_type(int, lambda v: v >= 0, "a whole number >= 0")
_positive = _number_type(float, lambda v: v > 0 and v != float("inf"), "a positive number")
_seconds = _number_type(float, lambda v: 0 <= v < float("inf"), "a number of seconds >= 0")
_probability = _number_type(float, lambda v: 0 <= v <= 1, "a probability between 0 and 1")
_port = _number_type(int, lambda v: 0 <= v <= 65535, "a port number 0..65535 (0: any free)")


def _checked_by(parse: Callable[[Any], Any], converted: bool = False) -> Callable[[str], Any]:
    """An argparse type that applies the settings' own check (one rule, one message, for the
    Python options and their flags): a bad value is a usage error, exit 2. The flag's value is
    the text (the settings convert it again), or with ``converted`` what ``parse`` returned."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value if converted else text

    convert.__name__ = parse.__name__
    return convert


_price = _checked_by(parse_price)
_max_age = _checked_by(parse_max_age)
_retry_temporary_age = _checked_by(parse_retry_temporary)
_region = _checked_by(parse_region)


def _option_number(name: str, kind: type) -> Callable[[str], Any]:
    """An argparse type for the option ``name``: the text read as ``kind``, then the option's
    own validator from :data:`pd_hlr.settings.OPTIONS` (one rule, one message)."""
    validator = next(o.validator for o in OPTIONS if o.name == name)

    def read(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{name} must be a number, not {text!r}") from None
        return validator(value)

    read.__name__ = name
    return _checked_by(read, converted=True)


_workers = _option_number("workers", int)
_rate_limit = _option_number("rate_limit", float)
_budget = _option_number("budget", int)


def _base_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL like {DEFAULT_BASE_URL}")
    return text.rstrip("/")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


_CACHE_HELP = (
    f"cache folder, or s3://bucket/prefix (a team cache on object storage; needs pd-hlr[s3]) "
    f"(default: ${CACHE_ENV} or ~/.cache/pd_hlr)"
)


def _doc(name: str) -> str:
    """An option's meaning, from :data:`pd_hlr.settings.OPTIONS` (the one place it is said)."""
    return next(o.doc for o in OPTIONS if o.name == name)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "input",
        help="CSV/TSV (also .gz, .bz2, .xz, .zip), parquet or Excel .xlsx file; "
        "or a folder or glob of parquet/CSV files",
    )
    p.add_argument("--column", "-c", required=True, help="column holding the phone numbers")
    p.add_argument(
        "--engine",
        choices=("pandas", "dask", "polars"),
        default=None,
        help="pandas (default for files), dask (default for folders and globs) or polars "
        "(files, folders and globs, streamed; the polars extra)",
    )
    p.add_argument(
        "--sheet",
        default=None,
        metavar="SHEET",
        help="Excel sheet: its name or position (1 = the first, the default)",
    )
    p.add_argument(
        "--sep",
        type=_separator,
        default=None,
        metavar="SEP",
        help="CSV/TSV separator, e.g. ';' or tab (default: by the suffix, or sniffed from "
        "the header when unambiguous)",
    )
    p.add_argument(
        "--encoding",
        type=_encoding,
        default=None,
        metavar="ENC",
        help="CSV/TSV text encoding, e.g. cp1252, latin-1, utf-16 (default: UTF-8, else "
        "cp1252, else Latin-1, with a note)",
    )


def _separator(text: str) -> str:
    """``--sep``: one character; ``tab`` or ``\\t`` for a tab."""
    sep = {"tab": "\t", "\\t": "\t"}.get(text.lower(), text)
    if len(sep) != 1:
        raise argparse.ArgumentTypeError(f"a separator is one character (or 'tab'), not {text!r}")
    return sep


def _encoding(text: str) -> str:
    import codecs

    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r}") from None


#: An argument spec: ``add_argument``'s flags and keywords (:func:`_arg`).
_Spec = tuple[tuple[str, ...], dict[str, Any]]


def _arg(*flags: str, **kwargs: Any) -> _Spec:
    """One ``add_argument`` call, as data."""
    return flags, kwargs


class _OneOf(NamedTuple):
    """Argument specs that exclude each other (a mutually exclusive group)."""

    specs: tuple[_Spec, ...]


def _add_args(target: Any, specs: Sequence[_Spec | _OneOf]) -> None:
    """Add ``specs`` to a parser or group, in order (a :class:`_OneOf` as a nested group)."""
    for spec in specs:
        if isinstance(spec, _OneOf):
            _add_args(target.add_mutually_exclusive_group(), spec.specs)
        else:
            flags, kwargs = spec
            target.add_argument(*flags, **kwargs)


def _add_groups(p: argparse.ArgumentParser, groups: Sequence[tuple[str, Sequence[Any]]]) -> list:
    """Add each ``(title, specs)`` as an argument group; the groups, in order."""
    made = []
    for title, specs in groups:
        made.append(p.add_argument_group(title))
        _add_args(made[-1], specs)
    return made


#: The lookup commands' (``validate``, ``estimate``) groups, after the input's options.
_LOOKUP_GROUPS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("the API's options (part of the cache key)", (
        _arg("--detailed", action="store_true", help=_doc("detailed")),
        _arg("--roaming", action="store_true", help=_doc("roaming")),
        _arg("--route", choices=ROUTES, default=None, help="routing product (the spec's values)"),
        _arg("--no-msisdn", dest="msisdn", action="store_false",
             help="send non-canonical numbers as they are (the API's msisdn=false)"),
    )),
    ("what is sent", (
        _arg("--default-region", default=None, type=_region, metavar="XX",
             help=_doc("default_region")),
        _arg("--strict", action=argparse.BooleanOptionalAction, default=None,
             help=_doc("strict")),
        _arg("--only-mobile", action="store_true", help=_doc("only_mobile")),
        _arg("--ambiguous", choices=AMBIGUOUS_CHOICES, default=None, help=_doc("ambiguous")),
        _arg("--region-column", default=None, metavar="NAME", help=_doc("region_column")),
    )),
    ("the cache", (
        _OneOf((
            _arg("--cache", default=None, metavar="DIR", help=_CACHE_HELP),
            _arg("--no-cache", action="store_true", help="do not read or write a cache"),
        )),
        _arg("--max-age", default=None, type=_max_age, metavar="AGE",
             help='look cached answers older than this up again: a duration with a unit, "30D"'),
        _arg("--refresh", action="store_true", help=_doc("refresh")),
        _OneOf((
            _arg("--retry-temporary", dest="retry_temporary", default=None,
                 type=_retry_temporary_age, metavar="AGE",
                 help="look a cached temporary outcome (absent subscriber, ...) up again once "
                 f'it is this old (default "{DEFAULT_RETRY_TEMPORARY}"; "0s": on every run)'),
            _arg("--no-retry-temporary", dest="retry_temporary", action="store_false",
                 default=None, help="serve temporary outcomes from the cache like any answer "
                 "(only --max-age applies)"),
        )),
    )),
    ("where lookups go", (
        _OneOf((
            _arg("--sandbox", action="store_true",
                 help="run against the embedded sandbox (synthetic answers, no account needed)"),
            _arg("--base-url", type=_base_url, default=None, metavar="URL",
                 help=f"the API's address (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})"),
        )),
        _arg("--price", default=None, type=_price,
             help=f"price per lookup for the estimate (default {DEFAULT_PRICE})"),
    )),
)

#: ``validate``'s own groups (``--json`` joins the output's last).
_VALIDATE_GROUPS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("the output", (
        _arg("--out", "-o", default=None, metavar="PATH",
             help="output .parquet, .csv, .tsv (also .csv.gz ...) or .xlsx; a folder for the "
             "dask engine (default: INPUT.hlr.parquet; a folder or glob: NAME.hlr)"),
        _arg("--force", action="store_true", help="overwrite an existing output"),
        _arg("--no-escape-formulas", dest="escape_formulas", action="store_false",
             help="CSV/TSV/xlsx: write text cells that start like a spreadsheet formula (=, +, "
             "-, @, tab, CR) as they are; by default they get a leading ' (plain numbers never "
             "do)"),
        _arg("--prefix", default="", metavar="P",
             help=f'{_doc("prefix")} (e.g. "hlr."): for inputs that already have columns '
             "named like results"),
    )),
    ("the run", (
        _arg("--budget", type=_budget, default=None, metavar="N", help=_doc("budget")),
        _arg("--workers", type=_workers, default=None, metavar="N",
             help=f"concurrent requests (default {DEFAULT_WORKERS})"),
        _arg("--rate-limit", type=_rate_limit, default=None, metavar="R",
             help="a ceiling on requests per second (default: the pace adapts to the API's "
             "429s)"),
        _arg("--no-progress", dest="progress", action="store_false", default=None,
             help="no progress bar"),
    )),
)

#: ``cache``'s arguments.
_CACHE_ARGS = (
    _arg("action", choices=("stats", "compact", "clear")),
    _arg("--cache", default=None, metavar="DIR", help=_CACHE_HELP),
    _arg("--yes", "-y", action="store_true",
         help="clear without asking (needed without a terminal)"),
)


def _add_lookup_options(p: argparse.ArgumentParser) -> None:
    _add_input_options(p)
    _add_groups(p, _LOOKUP_GROUPS)


def _add_validate_options(p: argparse.ArgumentParser) -> None:
    _add_lookup_options(p)
    out, _run = _add_groups(p, _VALIDATE_GROUPS)
    _add_json_option(out)


def _add_estimate_options(p: argparse.ArgumentParser) -> None:
    _add_lookup_options(p)
    _add_json_option(p)


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    _add_args(p, _CACHE_ARGS)


def _debug_parent() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return parent


#: The commands: name, ``add_parser``'s help / description / examples, and what adds the options.
_COMMANDS: tuple[tuple[str, dict[str, Any], Callable[[argparse.ArgumentParser], None]], ...] = (
    ("validate", dict(
        help="look numbers up and write an enriched table",
        description="Look the numbers up (cache first) and write the input with result columns.",
        epilog=_examples(
            "pd-hlr validate contacts.csv -c phone --default-region GB --sandbox",
            "pd-hlr validate leads.xlsx --sheet Leads -c mobile --detailed --out leads.hlr.csv",
            f"{TOKEN_ENV}=... pd-hlr validate contacts.csv.gz -c phone --budget 5000",
            "pd-hlr validate 'calls/*.parquet' -c phone --out calls.hlr   # Dask, streaming",
        ),
    ), _add_validate_options),
    ("estimate", dict(
        help="count what a run would look up and cost; sends nothing",
        description="Count rows, distinct numbers, cached answers and the cost. Sends nothing.",
        epilog=_examples(
            "pd-hlr estimate contacts.csv -c phone --default-region GB --max-age 30D",
            "pd-hlr estimate contacts.csv -c phone --sandbox   # the sandbox's cached answers",
        ),
    ), _add_estimate_options),
    ("cache", dict(
        help="inspect or maintain the lookup cache",
        description="stats: counts and sizes; compact: merge all parts into one; "
        "clear: delete every cached answer (asks first).",
        epilog=_examples(
            "pd-hlr cache stats",
            "pd-hlr cache compact --cache hlr_cache",
            "pd-hlr cache clear --cache hlr_cache --yes",
        ),
    ), _add_cache_options),
    ("sandbox", dict(
        help="serve the local spec-faithful sandbox API until Ctrl-C",
        description="A local HTTP server that answers like the Provero API with synthetic data.",
        epilog=_examples(
            "pd-hlr sandbox --port 8787 --latency 0.05 --fault-503 0.1",
            f"{TOKEN_ENV}=demo pd-hlr validate contacts.csv -c phone "
            "--base-url http://127.0.0.1:8787",
        ),
    ), lambda p: _add_sandbox_options(p)),  # defined below, with the fault knobs
)


def _epilog() -> str:
    """``pd-hlr --help``'s epilog: the environment, the exit codes, examples."""
    import textwrap

    codes = "\n".join(
        textwrap.fill(
            meaning.replace("`", ""), 79, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7
        )
        for code, meaning in EXIT_CODES.items()
    )
    return (
        f"environment:\n  {TOKEN_ENV}  the API token (never printed)\n"
        f"  {BASE_URL_ENV}   the API's address (--base-url)\n"
        f"  {CACHE_ENV}       the cache folder (--cache)\n\nexit codes:\n{codes}\n\n"
        + _examples(
            "pd-hlr validate contacts.csv -c phone --default-region GB --sandbox",
            "pd-hlr validate --help",
        )
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``pd-hlr`` parser. Cheap: it imports no command's machinery.

    >>> build_parser().parse_args(["cache", "stats"]).action
    'stats'
    """
    from . import __version__

    parser = _Parser(
        prog="pd-hlr",
        description="Enrich phone-number tables with HLR lookups (Provero API).",
        epilog=_epilog(),
    )
    parser.add_argument("--version", action="version", version=f"pd-hlr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    common = [_debug_parent()]
    for name, texts, add_options in _COMMANDS:
        add_options(sub.add_parser(name, parents=common, **texts))
    _add_demo_parser(sub, common)
    return parser


#: The quickstart's main job, on the sample list that ships with pd-hlr (``pd-hlr demo``).
DEMO_OPTIONS = ("--column", "phone", "--region-column", "country", "--default-region", "GB",
                "--detailed", "--route", "detailed", "--sandbox")
DEMO_OUT = "contacts.hlr.parquet"


def _add_demo_parser(sub: Any, common: list[_Parser]) -> None:
    d = sub.add_parser(
        "demo",
        parents=common,
        help="enrich the bundled sample list against the embedded sandbox",
        description="The quickstart's main job, from any folder, no account or file needed: "
        "validate the sample contact list that ships with pd-hlr (pd_hlr.datasets.contacts()) "
        "against the embedded sandbox (synthetic answers) and write the enriched table. "
        f"The same as: pd-hlr validate CONTACTS {' '.join(DEMO_OPTIONS)} --out {DEMO_OUT}",
        epilog=_examples(
            "pd-hlr demo",
            "pd-hlr demo --out contacts.hlr.xlsx --force",
        ),
    )
    d.add_argument(
        "--out",
        "-o",
        default=DEMO_OUT,
        metavar="PATH",
        help=f"output .parquet, .csv, .tsv or .xlsx (default: {DEMO_OUT})",
    )
    d.add_argument("--force", action="store_true", help="overwrite an existing output")
    d.add_argument("--cache", default=None, metavar="DIR", help=_CACHE_HELP)
    d.add_argument("--no-cache", action="store_true", help="do not read or write a cache")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_json_option(d)


# --- the sandbox command's options, generated from sandbox.Faults ------------------------------
_FAULT_HELP = {
    "retry_after": "seconds in the Retry-After of injected 429/503 answers",
    "retry_after_http_date": "send Retry-After as an HTTP date instead of seconds",
    "slow_seconds": "seconds an injected slow answer waits",
}


def _is_probability(faults_cls: type, f: dataclasses.Field[Any]) -> bool:
    """A field of ``Faults`` is a probability when its metadata says so
    (``field(metadata={"probability": True})``), else when Faults refuses 2 for it (its
    documented range is [0, 1]); seconds, flags and counts accept 2."""
    if "probability" in f.metadata:
        return bool(f.metadata["probability"])
    if isinstance(f.default, bool) or not isinstance(f.default, int | float):
        return False
    try:
        faults_cls(**{f.name: 2.0})
    except ValueError:
        return True
    return False


def fault_options(faults_cls: type) -> list[tuple[dataclasses.Field[Any], list[str], bool]]:
    """(field, option names, is a probability) for every field of ``faults_cls``: a
    probability ``error_500`` is ``--fault-error-500`` (also ``--fault-500``); any other field
    ``slow_seconds`` is ``--slow-seconds``.

    >>> from pd_hlr.sandbox import Faults
    >>> [names for _, names, _ in fault_options(Faults)][0]
    ['--fault-500', '--fault-error-500']
    """
    options = []
    for f in dataclasses.fields(faults_cls):
        dashed = f.name.replace("_", "-")
        if _is_probability(faults_cls, f):
            names = [f"--fault-{dashed}"]
            status = re.search(r"_(\d{3})$", f.name)
            if status:  # the short spelling the docs have always used: --fault-503
                names.insert(0, f"--fault-{status.group(1)}")
            options.append((f, names, True))
        else:
            options.append((f, [f"--{dashed}"], False))
    return options


def _fault_help(f: dataclasses.Field[Any], is_probability: bool) -> str:
    text = f.metadata.get("help") or _FAULT_HELP.get(f.name)
    if not text:
        what = f.name.replace("_", " ")
        text = f"probability of the {what!r} fault" if is_probability else f"Faults.{f.name}"
    return f"{text} (default {f.default})" if f.default else text


def _add_sandbox_options(p: argparse.ArgumentParser) -> None:
    from . import sandbox

    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8787, metavar="N", help="port (default 8787; 0: any free)"
    )
    p.add_argument(
        "--token", default="demo", help="the Bearer token to accept (default: demo)"
    )
    p.add_argument(
        "--latency", type=_seconds, default=0.0, metavar="S", help="seconds added per request"
    )
    p.add_argument(
        "--balance", type=_count, default=None, metavar="N", help="lookups before 402"
    )
    p.add_argument(
        "--rate-limit",
        type=_positive,
        default=None,
        metavar="R",
        help="the hidden limit: requests in any second beyond it get 429 + Retry-After",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the fault RNG")
    probabilities = p.add_argument_group(
        "fault injection (probability per request, 0..1; see pd_hlr.sandbox.Faults)"
    )
    details = p.add_argument_group("fault details")
    for f, names, is_probability in fault_options(sandbox.Faults):
        kwargs: dict[str, Any] = {
            "dest": f"faults_{f.name}",
            "default": f.default,
            "help": _fault_help(f, is_probability),
        }
        if is_probability:
            probabilities.add_argument(*names, type=_probability, metavar="P", **kwargs)
        elif isinstance(f.default, bool):
            action = argparse.BooleanOptionalAction if f.default else "store_true"
            details.add_argument(*names, action=action, **kwargs)
        elif isinstance(f.default, float):
            details.add_argument(*names, type=_seconds, metavar="S", **kwargs)
        else:
            details.add_argument(*names, type=_count, metavar="N", **kwargs)


# --- helpers of the commands ------------------------------------------------------------------
class _NoToken(Exception):
    pass


class _StdoutClosed(Exception):
    """Standard output's reader went away (``| head``): exit quietly."""


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _emit(text: str, *, keep_going: bool = False) -> None:
    """Print ``text`` on stdout (the command's result). A closed pipe ends the command quietly,
    or with ``keep_going`` (a server) just stops the printing."""
    try:
        print(text, file=sys.stdout, flush=True)
    except BrokenPipeError:
        _silence_stdout()
        if not keep_going:
            raise _StdoutClosed() from None


def _note(text: str) -> None:
    print(f"pd-hlr: {text}", file=sys.stderr, flush=True)


def _loud(message: str) -> None:
    import textwrap

    lines = textwrap.wrap(message, 76)
    width = max(len(line) for line in lines) + 4
    bar = "!" * width
    body = "\n".join(f"! {line.ljust(width - 4)} !" for line in lines)
    print(f"{bar}\n{body}\n{bar}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    """What ``estimate`` needs of a client: the API address that names the cache namespace."""

    base_url: str


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
    if not os.environ.get(TOKEN_ENV):
        raise _NoToken()
    with HLRClient(base_url=args.base_url, **kwargs) as client:
        yield client


def _settings_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :data:`pd_hlr.settings.OPTIONS` this command was given (None: the
    option's default), by name; ``client`` and ``cache`` are made by the command."""
    return {
        o.name: getattr(args, o.name)
        for o in OPTIONS
        if o.name not in RUN_OBJECTS and getattr(args, o.name, None) is not None
    }


def _cache_arg(args: argparse.Namespace) -> Any:
    return False if args.no_cache else args.cache


def _require_column(columns: Any, args: argparse.Namespace) -> None:
    from .pipeline import column_hint

    for name in (args.column, getattr(args, "region_column", None)):
        if name is not None and name not in columns:
            listed = ", ".join(map(str, columns)) or "(none)"
            hint = column_hint(name, list(columns))
            raise InputError(f"no column {name!r} in {args.input}{hint}; columns: {listed}")


def _engine(args: argparse.Namespace) -> str:
    from . import _io

    engine = args.engine or ("dask" if _io.is_dataset(args.input) else "pandas")
    if engine != "pandas" and args.sheet is not None:
        raise InputError("--sheet applies to one Excel file: use --engine pandas")
    return engine


def _read_dataset(args: argparse.Namespace) -> tuple[Any, Any]:
    """The input as a lazy Dask frame, and the Dask face (an error naming the extra without)."""
    from . import _io

    ddf = _io.read_dataset(args.input, sep=args.sep, encoding=args.encoding)
    _require_column(ddf.columns, args)
    try:
        from . import dask as hlr_dask
    except ImportError as exc:
        raise InputError(str(exc)) from exc
    return ddf, hlr_dask


def _read(args: argparse.Namespace) -> Any:
    from . import _io

    frame = _io.read_table(args.input, column=args.column, sheet=args.sheet, notify=_note,
                           sep=args.sep, encoding=args.encoding)
    _require_column(frame.columns, args)
    return frame


def _finished(report: Any) -> int:
    """Exit code of a run that completed: 0, or :data:`EXIT_API` when some numbers failed
    after retries (their rows are in the output as errors; they were not cached)."""
    if not report.failed:
        return EXIT_OK
    _note(
        f"{report.failed:,} numbers failed after retries and have no answer (rows with "
        "hlr_source 'error'); they are not cached: re-run later to look up only those"
    )
    return EXIT_API


def _add_json_option(group: Any) -> None:
    group.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on stdout (for scripts) instead of text",
    )


def _print_result(args: argparse.Namespace, summary: Any, report: Any, out_path: str) -> None:
    """The end of a validate run on stdout: the summary and the run report as text, or with
    ``--json`` one JSON object holding the report, the summary rows and the output path."""
    if args.json:
        import json

        rows = summary.to_frame() if hasattr(summary, "to_frame") else summary
        payload = {
            "output": out_path,
            "report": report.to_dict(),
            "summary": json.loads(rows.to_json(orient="records")),
        }
        _emit(json.dumps(payload, indent=2))
        return
    _emit(f"{summary}\n\n{report}")


# --- commands ------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from . import _io

    engine = _engine(args)
    out_path = args.out or _io.default_output(args.input)
    if engine == "dask":
        return _validate_dataset(args, out_path)
    if engine == "polars":
        return _validate_polars(args, out_path)
    _io.check_output(out_path, source=args.input, force=args.force)
    frame = _read(args)
    with _client(args) as client:
        out = frame.hlr.validate(
            args.column, client=client, cache=_cache_arg(args), **_settings_kwargs(args)
        )
    _io.write_table(out, out_path, replace=args.force, escape_formulas=args.escape_formulas)
    print(f"wrote {len(out):,} rows to {out_path}", file=sys.stderr)
    report = out.hlr.report()
    _print_result(args, out.hlr.summary(), report, out_path)
    return _finished(report)


def _validate_dataset(args: argparse.Namespace, out_path: str) -> int:
    """A folder / glob (or ``--engine dask``): read lazily, look each distinct number up once,
    write a parquet folder partition by partition and summarise in the same pass, so memory
    stays bounded by a few partitions plus the per-number table."""
    import json

    from . import __version__, _io, analysis
    from .pipeline import report_of
    from .settings import ValidateSettings

    _io.check_output(out_path, source=args.input, force=args.force, folder=True)
    ddf, hlr_dask = _read_dataset(args)
    import dask

    settings = ValidateSettings.from_kwargs(**_settings_kwargs(args))
    with _client(args) as client:
        out = hlr_dask.validate_frame(
            ddf, args.column, settings, client=client, cache=_cache_arg(args)
        )
    info = dict(out._meta.attrs.get(analysis.ATTRS_KEY) or {})
    info["pd_hlr_version"] = __version__
    final = Path(out_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")  # published whole, at the end
    try:
        write = out.to_parquet(
            tmp,
            write_index=out.index.name is not None,
            compute=False,
            custom_metadata={b"pd_hlr": json.dumps(info, default=str, sort_keys=True).encode()},
            name_function=lambda i: f"part.{i:06d}.parquet",
        )
        _, counts = dask.compute(write, hlr_dask.summary_parts(out, settings.prefix))
        _io.publish(tmp, final, replace=args.force)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    rows = int(counts.loc[counts["section"] == analysis.ROWS_KEY, "rows"].sum())
    print(f"wrote {rows:,} rows to {out_path}/", file=sys.stderr)
    report = report_of(out._meta)
    _print_result(args, analysis.summary_from_counts(counts), report, out_path)
    return _finished(report)


def _validate_polars(args: argparse.Namespace, out_path: str) -> int:
    """``--engine polars``: scan the input (a file, folder or glob), look each distinct value up
    once, then stream the rows joined to their results into the output (one file). Memory
    holds the per-value results, not the rows."""
    from . import _io

    if not args.out and _io.is_dataset(args.input):
        out_path += ".parquet"  # one file, not the dask engine's folder
    _io.check_output(out_path, source=args.input, force=args.force)
    _io.check_polars_output(out_path, args.input)
    # first: without the extra, an InputError naming it
    frame = _io.scan_polars(args.input, sep=args.sep, encoding=args.encoding)
    from . import polars as hlr_polars

    _require_column(frame.collect_schema().names(), args)
    with _polars_reads(args.input):
        with _client(args) as client:
            out = frame.hlr.validate(
                args.column, client=client, cache=_cache_arg(args), **_settings_kwargs(args)
            )
        _io.sink_polars(out, out_path, replace=args.force, escape_formulas=args.escape_formulas)
    report = out.hlr.report()
    print(f"wrote {report.rows:,} rows to {out_path}", file=sys.stderr)
    written = _io.scan_polars(out_path) if _io.output_format(out_path).kind == "parquet" else out
    summary = hlr_polars.summary(written, prefix=args.prefix)  # parquet: the result columns only
    _print_result(args, summary, report, out_path)
    return _finished(report)


@contextlib.contextmanager
def _polars_reads(source: str) -> Iterator[None]:
    """Polars reads the input lazily, while the lookups' query and the output's sink run: a
    file it cannot parse (a ragged CSV line, bad UTF-8) is bad input (exit 2), as it is for
    the pandas and Dask engines, not a bug."""
    import polars as pl

    try:
        yield
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"cannot read {source}: {' '.join(str(exc).split())}") from exc


def cmd_estimate(args: argparse.Namespace) -> int:
    kwargs = _settings_kwargs(args)
    if _engine(args) == "polars":
        from . import _io

        scanned = _io.scan_polars(args.input, sep=args.sep, encoding=args.encoding)
        from . import polars as _registers_hlr  # noqa: F401  (scanned.hlr)

        _require_column(scanned.collect_schema().names(), args)

        def estimate(client: Any) -> Any:
            with _polars_reads(args.input):
                return scanned.hlr.estimate(
                    args.column, client=client, cache=_cache_arg(args), **kwargs
                )
    elif _engine(args) == "dask":
        from .settings import ValidateSettings

        ddf, hlr_dask = _read_dataset(args)
        settings = ValidateSettings.from_kwargs(**kwargs)

        def estimate(client: Any) -> Any:
            return hlr_dask.estimate_frame(
                ddf, args.column, settings, client=client, cache=_cache_arg(args)
            )
    else:
        frame = _read(args)

        def estimate(client: Any) -> Any:
            return frame.hlr.estimate(args.column, client=client, cache=_cache_arg(args), **kwargs)

    # With --sandbox, count against the sandbox's cache namespace (what `validate --sandbox`
    # fills); without it, against the API at --base-url / PROVERO_BASE_URL / the vendor's.
    # No token is needed: nothing is sent.
    if args.sandbox:
        client_cm: Any = _client(args)
    else:
        client_cm = contextlib.nullcontext(_Endpoint(args.base_url) if args.base_url else None)
    with client_cm as client:
        est = estimate(client)
    if args.json:
        import json

        _emit(json.dumps(est.to_dict(), default=str, indent=2))
    else:
        _emit(f"{est}. Nothing was sent (--json for the figures).")
    return EXIT_OK


def _confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse (the caller must pass ``--yes``)."""
    if not sys.stdin or not sys.stdin.isatty():
        raise InputError(
            "cache clear deletes every cached answer, and there is no terminal to ask: "
            "pass --yes to confirm"
        )
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import HLRCache, default_cache_path
    from .cache.s3 import is_url

    path: Any = args.cache if args.cache and is_url(args.cache) else None
    if path is None:
        path = Path(args.cache).expanduser() if args.cache else default_cache_path()
    if is_url(str(path)):
        pass  # an object store: the cache itself says when the bucket is missing
    elif not path.exists():
        where = "" if args.cache else f" (the default cache folder, from ${CACHE_ENV} or ~/.cache)"
        raise InputError(f"no such folder: {path}{where}; nothing has been cached there")
    elif not path.is_dir():
        raise InputError(f"not a folder: {path}")
    cache = HLRCache(path)
    if args.action == "stats":
        result: dict[str, Any] = cache.stats()
    elif args.action == "compact":
        result = cache.compact()
    else:
        if not args.yes:
            stats = cache.stats()
            files = stats["parts"] + stats["journals"]
            if not files:
                _emit(f"nothing to remove: {path} holds no cached answers")
                return EXIT_OK
            question = (
                f"Delete all {stats['entries']:,} cached answers ({files} files, "
                f"{stats['bytes']:,} bytes) from {path}? A re-run pays for them again."
            )
            if not _confirm(question):
                _note("cancelled; nothing was removed")
                return EXIT_OK
        _emit(f"removed {cache.clear()} files from {cache.path}")
        return EXIT_OK
    width = max(map(len, result), default=0)
    _emit("\n".join(f"{key:>{width}}: {value}" for key, value in result.items()))
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from . import sandbox

    faults = sandbox.Faults(
        **{f.name: getattr(args, f"faults_{f.name}") for f in dataclasses.fields(sandbox.Faults)}
    )
    fired = [
        f"{f.name}={getattr(faults, f.name)}"
        for f, _, is_probability in fault_options(sandbox.Faults)
        if is_probability and getattr(faults, f.name)
    ]
    stop = threading.Event()
    with _stop_on_sigterm(stop), sandbox.serve(
        token=args.token,
        port=args.port,
        latency=args.latency,
        balance=args.balance,
        rate_limit=args.rate_limit,
        faults=faults,
        seed=args.seed,
        host=args.host,
    ) as sb:
        endpoint = sb.url + ENDPOINT_PATH
        say = functools.partial(_emit, keep_going=True)  # a lost reader does not stop a server
        say(f"Provero sandbox listening on {sb.url}  (endpoint {endpoint})")
        say(
            f"  try: curl -s -X POST {endpoint} -H 'Authorization: Bearer {args.token}' "
            "-H 'Content-Type: application/json' -d '{\"phone\": \"+447400123456\"}'"
        )
        if fired:
            say(f"  faults: {', '.join(fired)}")
        say("Press Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(3600):
                pass
        s = sb.stats()
        say(
            f"\nstopped: {s.requests} requests, {s.total_charged} charged, "
            f"statuses {dict(sorted(s.status_counts.items()))}"
        )
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (a service manager's stop) ends the sandbox like Ctrl-C does."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_demo(args: argparse.Namespace) -> int:
    """``pd-hlr validate`` on the bundled sample with the quickstart's options, in the sandbox."""
    from .datasets import contacts_file

    with contacts_file() as sample:
        argv = ["validate", str(sample), *DEMO_OPTIONS, "--out", args.out]
        argv += ["--force"] * args.force + ["--no-cache"] * args.no_cache
        argv += ["--no-progress"] * args.no_progress + ["--json"] * args.json
        argv += ["--cache", args.cache] if args.cache else []
        return cmd_validate(build_parser().parse_args(argv))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "estimate": cmd_estimate,
    "cache": cmd_cache,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
}


# --- the entry point -----------------------------------------------------------------------------
def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"pd-hlr: warning: {message}", file=sys.stderr, flush=True)


def _flush_stdout() -> bool:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return False
    except (OSError, ValueError):
        pass
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pd-hlr`` console script. Returns the exit code."""
    try:
        code = _main(argv)
    except SystemExit:  # --help, --version, usage errors: argparse's own exit codes
        _flush_stdout()
        raise
    return code if _flush_stdout() else EXIT_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from . import errors

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return COMMANDS[args.command](args)
    except errors.RunInterrupted as exc:  # a run's lookups: what was saved, what is left
        print(exc.args[0], file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        tail = "; everything already answered is in the cache" if args.command == "validate" else ""
        print(f"pd-hlr: interrupted{tail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _StdoutClosed:
        return EXIT_PIPE
    except Exception as exc:
        if args.debug:
            raise
        code, message = _classify(exc, errors)
        print(f"pd-hlr: error: {message}", file=sys.stderr)
        return code


def _classify(exc: BaseException, errors: Any) -> tuple[int, str]:
    """The exit code and the one-line message for an exception."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError quotes
    one_line = " ".join(str(text).split())
    notes = " ".join(" ".join(str(n).split()) for n in getattr(exc, "__notes__", []))
    if isinstance(exc, _NoToken):
        return EXIT_AUTH, (
            f"no API token: set {TOKEN_ENV} (or pass --sandbox to try the embedded "
            "sandbox with synthetic answers)"
        )
    if isinstance(exc, InputError | KeyError | FileNotFoundError):
        return EXIT_INPUT, one_line
    if isinstance(exc, errors.BudgetExceededError):
        return EXIT_BUDGET, one_line
    if isinstance(exc, errors.ColumnConflictError):  # said the command line's way
        columns = [str(c) for c in exc.columns] or ["?"]
        more = f" and {len(columns) - 5} more" if len(columns) > 5 else ""
        return EXIT_INPUT, (
            f"the input already has columns named like result columns ({', '.join(columns[:5])}"
            f"{more}); nothing was sent. Pass --prefix (e.g. --prefix hlr.) to put the results "
            "under a prefix, or rename those columns."
        )
    if isinstance(exc, errors.CacheNotWritableError):
        return EXIT_INPUT, f"{one_line} Pass --cache DIR with a writable folder, or --no-cache."
    if isinstance(exc, errors.InsufficientBalanceError):
        return EXIT_BALANCE, f"{one_line} {notes}".strip()
    if isinstance(exc, errors.AuthenticationError):
        return EXIT_AUTH, one_line
    if isinstance(exc, errors.ServiceUnavailableError):
        after = getattr(exc, "resume_after", None)
        hint = f" The API asked for a pause of {after:.0f} s." if after else ""
        return EXIT_API, f"{one_line}{hint} {notes}".strip()
    if isinstance(exc, errors.HLRError):
        return EXIT_API, f"{one_line} {notes}".strip()
    if isinstance(exc, ValueError | TypeError):
        return EXIT_INPUT, one_line
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
        return EXIT_INPUT, one_line
    return EXIT_BUG, f"{type(exc).__name__}: {one_line} (re-run with --debug for a traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
