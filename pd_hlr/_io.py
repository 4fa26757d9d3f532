"""The command line's files: reading the input table, naming and writing the output.

Inputs: CSV (``.csv``, ``.txt``, no suffix) and TSV (``.tsv``, ``.tab``), each also compressed
(``.gz``, ``.bz2``, ``.xz``, ``.zip`` holding one file); parquet (a file or a folder); Excel
(``.xlsx``, ``.xlsm``; the ``excel`` extra). Text tables are read with every column as text, so
phone numbers never turn into floats; in Excel only the phone column is turned into text (a
number cell ``447400123456`` becomes ``"447400123456"``, not ``"447400123456.0"``).

Datasets (a folder or a glob) are read lazily with Dask, partition by partition, or with
Polars (``--engine polars``: :func:`scan_polars`, streamed to the output by :func:`sink_polars`).

>>> input_format("contacts.tsv.gz")
Format(kind='text', sep='\\t', compression='gzip')
>>> default_output("data/contacts.csv")
'data/contacts.csv.hlr.parquet'
"""

from __future__ import annotations

import glob
import lzma
import os
import zipfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd


class InputError(Exception):
    """Bad input or usage (exit code 2): a missing or unreadable file, an output in the way."""


#: Compression suffixes and the name pandas gives each.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
#: Text-table suffixes and their separators ("" is a file without a suffix: CSV).
TEXT_SUFFIXES = {".csv": ",", ".txt": ",", "": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
#: Spreadsheet formats pandas reads only with other engines: refused with a way out.
OTHER_SPREADSHEETS = (".xls", ".xlsb", ".ods", ".numbers")
EXCEL_EXTRA = "pip install 'pd-hlr[excel]'"
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, lzma.LZMAError)


class Format(NamedTuple):
    """How to read (or write) a file: ``kind`` is text, parquet or excel."""

    kind: str
    sep: str | None = None
    compression: str | None = None


def _zip_member_suffix(path: Path) -> str:
    """The suffix of the one file inside ``path`` (a zip archive), for ``contacts.zip``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if len(names) != 1:
        raise InputError(
            f"{path} holds {len(names)} files ({', '.join(names[:5]) or 'none'}): "
            "a zip input must hold exactly one CSV or TSV file"
        )
    return Path(names[0]).suffix.lower()


def input_format(path: str | Path) -> Format:
    """The :class:`Format` of a file, from its suffixes (``.csv.gz``: gzip-compressed CSV).

    >>> input_format("x.parquet").kind, input_format("x.csv").sep
    ('parquet', ',')
    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        inner = suffixes[-2] if len(suffixes) > 1 else ""
        if compression == "zip" and (not inner or inner not in TEXT_SUFFIXES) and p.exists():
            inner = _zip_member_suffix(p)
        if inner in TEXT_SUFFIXES:
            return Format("text", TEXT_SUFFIXES[inner], compression)
        raise InputError(
            f"unsupported input {p.name!r}: a compressed input must be CSV or TSV "
            f"(e.g. contacts.csv.gz); parquet and Excel files are compressed already"
        )
    suffix = suffixes[-1] if suffixes else ""
    if suffix in TEXT_SUFFIXES:
        return Format("text", TEXT_SUFFIXES[suffix])
    if suffix in PARQUET_SUFFIXES:
        return Format("parquet")
    if suffix in EXCEL_SUFFIXES:
        return Format("excel")
    if suffix in OTHER_SPREADSHEETS:
        raise InputError(
            f"unsupported input type {suffix!r}: save the sheet as .xlsx or .csv and read that"
        )
    raise InputError(
        f"unsupported input type {suffix!r}: use .csv, .tsv (optionally .gz, .bz2, .xz, "
        ".zip), .parquet or .xlsx"
    )


def is_dataset(path: str) -> bool:
    """A folder or a glob: read with Dask, partition by partition."""
    return os.path.isdir(path) or any(ch in path for ch in "*?[")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- reading -------------------------------------------------------------------------------------
def read_table(
    path: str,
    *,
    column: Hashable | None = None,
    sheet: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One input file (or a parquet folder) as one pandas frame; ``column`` (the phones) as text.

    >>> _ = pd.DataFrame({"phone": ["+447400123456"]}).to_csv("in.csv.gz", index=False)
    >>> read_table("in.csv.gz", column="phone")["phone"].tolist()
    ['+447400123456']
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file not found: {path}")
    fmt = Format("parquet") if p.is_dir() else input_format(p)
    if sheet is not None and fmt.kind != "excel":
        raise InputError(f"--sheet applies to Excel inputs (.xlsx), not to {p.name}")
    try:
        if fmt.kind == "parquet":
            return pd.read_parquet(p)
        if fmt.kind == "excel":
            return _read_excel(p, sheet, column, notify)
        # Phone numbers are text: never let the CSV reader turn them into floats.
        return pd.read_csv(
            p, sep=fmt.sep, dtype=str, keep_default_na=True, compression=fmt.compression
        )
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc


def _require_openpyxl(path: Path) -> None:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise InputError(
            f"reading {path.suffix} files needs the excel extra: {EXCEL_EXTRA}"
        ) from None


def pick_sheet(names: list[str], sheet: str | None) -> str:
    """The sheet ``--sheet`` names: a sheet name, else a 1-based position; None: the first.

    >>> pick_sheet(["Leads", "Notes"], "2"), pick_sheet(["Leads", "Notes"], None)
    ('Notes', 'Leads')
    """
    if not names:
        raise InputError("the workbook has no sheets")
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    listed = ", ".join(repr(n) for n in names)
    raise InputError(f"no sheet {sheet!r} in the workbook; sheets: {listed} (or 1..{len(names)})")


def _read_excel(
    path: Path,
    sheet: str | None,
    column: Hashable | None,
    notify: Callable[[str], None] | None,
) -> pd.DataFrame:
    _require_openpyxl(path)
    with pd.ExcelFile(path, engine="openpyxl") as book:
        names = [str(n) for n in book.sheet_names]
        name = pick_sheet(names, sheet)
        if sheet is None and len(names) > 1 and notify is not None:
            others = ", ".join(names[1:])
            notify(f"reading sheet {name!r}, the first of {len(names)} (also: {others}); "
                   "choose another with --sheet")
        frame = book.parse(name)
    if column is not None and column in frame.columns:
        frame[column] = cells_as_text(frame[column])
    return frame


def _cell_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 447400123456.0 -> "447400123456": what the cell showed
    return str(value)


def cells_as_text(values: pd.Series) -> pd.Series:
    """Spreadsheet cells as text: whole numbers without ".0", empty cells missing.

    >>> cells_as_text(pd.Series([447400123456.0, "+44 7400 123457", None])).tolist()
    ['447400123456', '+44 7400 123457', nan]
    """
    return pd.Series(
        [_cell_text(v) for v in values], index=values.index, name=values.name, dtype=str
    )


def _dataset_source(path: str) -> tuple[str | list[str], Format]:
    """A folder, a file or a glob: what to hand the reader (a glob's files, sorted) and the
    :class:`Format` of its (first) file."""
    source: str | list[str] = path
    if any(ch in path for ch in "*?[") and "://" not in path:
        source = sorted(glob.glob(path))
        if not source:
            raise InputError(f"no files match {path}")
    elif "://" not in path and not Path(path).exists():
        raise InputError(f"input not found: {path}")
    first = Path(source[0] if isinstance(source, list) else source)
    return source, Format("parquet") if first.is_dir() else input_format(first)


def read_dataset(path: str) -> dd.DataFrame:
    """A folder, a file or a glob of parquet or CSV/TSV files as a lazy Dask DataFrame."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise InputError(
            f"{path} is a folder or a glob: reading it needs the dask extra: "
            "pip install 'pd-hlr[dask]' (or pass --engine pandas for a parquet folder)"
        ) from None
    source, fmt = _dataset_source(path)
    try:
        if fmt.kind == "excel":
            raise InputError("Excel inputs are read with --engine pandas (one file, one sheet)")
        if fmt.kind == "text":
            return dd.read_csv(
                source,
                sep=fmt.sep,
                dtype=str,
                keep_default_na=True,
                compression=fmt.compression,
                # A compressed file cannot be split: one partition per file.
                **({"blocksize": None} if fmt.compression else {}),
            )
        return dd.read_parquet(source)
    except InputError:
        raise
    except (*_READ_ERRORS, IndexError) as exc:
        raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc


# --- the polars engine ---------------------------------------------------------------------------
#: Compressions of CSV/TSV the polars engine reads and writes (gzip: each input file is
#: decompressed in memory, one at a time, as Dask reads one compressed file per partition).
POLARS_COMPRESSIONS = (None, "gzip")


def scan_polars(path: str) -> Any:
    """A file, a folder or a glob of parquet or CSV/TSV files as a Polars LazyFrame, read when
    the query runs (streaming); every CSV column is text, as with the other engines."""
    try:  # Polars itself, never the Polars face: the CLI enables ``.hlr`` (faces are above)
        import polars as pl
    except ImportError:
        raise InputError("--engine polars needs Polars: pip install 'pd-hlr[polars]'") from None

    source, fmt = _dataset_source(path)
    if fmt.kind == "excel":
        raise InputError("Excel inputs are read with --engine pandas (one file, one sheet)")
    if fmt.compression not in POLARS_COMPRESSIONS:
        raise InputError(
            f"the polars engine reads CSV/TSV plain or gzip-compressed, not {fmt.compression}: "
            "use --engine pandas (or dask)"
        )
    try:
        if fmt.kind == "text":
            frame = pl.scan_csv(source, separator=fmt.sep or ",", infer_schema=False)
        else:
            frame = pl.scan_parquet(source)
        frame.collect_schema()  # headers and footers now: an unreadable file is bad input
    except (*_READ_ERRORS, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc
    return frame


def check_polars_output(out: str, source: str) -> None:
    """What the polars engine cannot write, refused before anything is sent: a compression
    other than gzip, an output where the input's folder or glob would read it next time."""
    fmt = output_format(out)
    if fmt.compression not in POLARS_COMPRESSIONS:
        raise InputError(
            f"the polars engine writes parquet, or CSV/TSV plain or .gz, not {fmt.compression}"
        )
    if is_dataset(source) and Path(out).resolve().is_relative_to(
        dataset_folder(source).resolve()
    ):
        raise InputError(f"--out {out} is inside the input folder: the next run would read it")


def sink_polars(frame: Any, path: str) -> None:
    """Stream a Polars ``validate()`` result to ``path`` by its type, atomically: parquet with
    the run's record in its metadata (``hlr.sink_parquet``), or CSV/TSV (plain or gzip)."""
    _write_by_type(
        path,
        frame.hlr.sink_parquet,
        lambda tmp, fmt: frame.sink_csv(
            tmp,
            separator=fmt.sep or ",",
            compression=fmt.compression or "uncompressed",
            check_extension=False,
        ),
    )


def _write_by_type(
    path: str, parquet: Callable[[Path], Any], text: Callable[[Path, Format], Any]
) -> None:
    """Write ``path`` by its name's type, its folder made first: ``parquet(path)`` (a writer
    that is atomic itself), or ``text(tmp, format)`` through :func:`write_atomically`."""
    fmt = output_format(path)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt.kind == "parquet":
        parquet(p)
    else:
        write_atomically(p, lambda tmp: text(tmp, fmt))


def write_atomically(path: str | Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a temp name beside ``path``, then ``os.replace`` it into place (the
    temp file is removed if ``write`` fails): every file pd-hlr writes for the user."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def dataset_folder(path: str) -> Path:
    """The folder a dataset path reads from: itself, or a glob's leading fixed folders.

    >>> str(dataset_folder("calls/2024/*.parquet"))
    'calls/2024'
    """
    fixed: list[str] = []
    for part in Path(path).parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    if len(fixed) == len(Path(path).parts):
        return Path(path)
    return Path(*fixed) if fixed else Path(".")


# --- the output ----------------------------------------------------------------------------------
def default_output(path: str) -> str:
    """The output name when ``--out`` is not given: the input's whole name + ``.hlr.parquet``
    (so ``contacts.csv`` and ``contacts.tsv`` never share one); a folder or glob gets a
    ``NAME.hlr`` folder beside it.

    >>> default_output("contacts.tsv"), default_output("calls/*.parquet")
    ('contacts.tsv.hlr.parquet', 'calls.hlr')
    """
    p = Path(path.rstrip("/") or "/")
    if p.is_dir():
        if p.name in ("", ".", ".."):  # "." names no folder: use the real one, beside it
            p = p.resolve()
        return str(p.parent / f"{p.name or 'output'}.hlr")
    if is_dataset(path):  # a glob: name the output after its fixed part, never inside it
        parts = p.parts
        k = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        folder = Path(*parts[:k]) if k else Path(".")
        stem = parts[k].split("*")[0].split("?")[0].split("[")[0].rstrip(".-_")
        if k == len(parts) - 1 and stem:
            return str(folder / f"{stem}.hlr")
        return str(folder.parent / f"{folder.resolve().name or 'output'}.hlr")
    return str(p.with_name(p.name + ".hlr.parquet"))


def output_format(path: str | Path) -> Format:
    """How an output file is written, from its name: parquet, or CSV/TSV (maybe compressed).

    >>> output_format("out.csv.gz")
    Format(kind='text', sep=',', compression='gzip')
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        return Format("parquet")
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS and suffixes[-1] != ".zip":
        compression = COMPRESSIONS[suffixes.pop()]
    if suffixes and suffixes[-1] in (".csv", ".tsv", ".tab"):
        return Format("text", TEXT_SUFFIXES[suffixes[-1]], compression)
    raise InputError(
        f"unsupported output type {Path(path).name!r}: use .parquet, .csv or .tsv "
        "(optionally .gz, .bz2, .xz)"
    )


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(out: str, *, source: str, force: bool, folder: bool = False) -> None:
    """Refuse an output the run could not (or should not) write, *before* any lookup is paid:
    an unknown type, the input itself, an existing file without ``force``, a folder that
    cannot be written. ``folder``: the output is a parquet folder (the Dask path)."""
    target = Path(out)
    if not folder:
        output_format(out)
    elif output_is_text(out):
        raise InputError("the dask engine writes a parquet folder: give --out a folder name")
    src = (dataset_folder(source) if folder else Path(source)).resolve()
    if target.resolve() == src or (folder and src.is_relative_to(target.resolve())):
        raise InputError(f"--out {out} is the input{' or holds it' if folder else ''}")
    if target.exists():
        if folder and not target.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        if not folder and target.is_dir():
            raise InputError(f"--out {out} is a folder: name a file")
        if not force and not (folder and not any(target.iterdir())):
            raise InputError(
                f"{out} exists: pass --force to overwrite it, or --out to name another output"
            )
    parent = _nearest_existing(target.parent)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {out}: {parent} is not a writable folder")


def output_is_text(path: str) -> bool:
    """Whether ``path`` names a CSV/TSV output (maybe compressed)."""
    try:
        return output_format(path).kind == "text"
    except InputError:
        return False


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write ``frame`` by the name's type, atomically (a temp file, then ``os.replace``).
    Parquet carries the run's options in its metadata (``frame.hlr.to_parquet``)."""
    _write_by_type(
        path,
        frame.hlr.to_parquet,
        lambda tmp, fmt: frame.to_csv(tmp, sep=fmt.sep, index=False, compression=fmt.compression),
    )
