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

import errno
import glob
import lzma
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd


class InputError(Exception):
    """Bad input or usage (exit code 2): a missing or unreadable file, an output in the way."""


#: Compression suffixes and the name pandas gives each.
Compression = Literal["gzip", "bz2", "xz", "zip"]
COMPRESSIONS: dict[str, Compression] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
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
    compression: Compression | None = None


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
    sep: str | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """One input file (or a parquet folder) as one pandas frame; ``column`` (the phones) as text.

    CSV/TSV: ``sep`` and ``encoding`` as given; else the separator is sniffed where that is
    unambiguous (:func:`sniff_separator`) and the text read as UTF-8, falling back to cp1252
    (then Latin-1) when it is not UTF-8; each guess is said through ``notify``.

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
    if (sep is not None or encoding is not None) and fmt.kind != "text":
        raise InputError(f"--sep and --encoding apply to CSV/TSV inputs, not to {p.name}")
    try:
        if fmt.kind == "parquet":
            return pd.read_parquet(p)
        if fmt.kind == "excel":
            return _read_excel(p, sheet, column, notify)
        return _read_text(p, fmt, sep, encoding, notify)
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc


#: Encodings tried, in order, when none is given: UTF-8 (a byte-order mark is skipped), then
#: Windows' Western European code page (what Excel saves as "CSV" there), then Latin-1.
FALLBACK_ENCODINGS = ("utf-8", "cp1252", "latin-1")
#: Separators the sniffer may choose between.
SNIFFED_SEPARATORS = ",;\t|"
_SAMPLE_BYTES = 64 << 10


def _head(path: Path, compression: str | None) -> bytes:
    """The first bytes of a (maybe compressed) text file, for sniffing."""
    import bz2
    import gzip

    opener: dict[str | None, Callable[[Path], Any]] = {
        None: lambda p: p.open("rb"), "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open,
    }
    if compression == "zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if not n.endswith("/"))
            with archive.open(name) as fh:
                return fh.read(_SAMPLE_BYTES)
    with opener[compression](path) as fh:
        return bytes(fh.read(_SAMPLE_BYTES))


def sniff_separator(sample: str, default: str) -> str | None:
    r"""The separator of a text table when it is unambiguous and not ``default``; else None.

    The header line must not hold ``default`` and must hold exactly one of ``; \t |`` (or
    ``,`` for a TSV), and :class:`csv.Sniffer` must agree on the sample.

    >>> sniff_separator("id;name;phone\n1;Ada;+447400123456\n", ",")
    ';'
    >>> sniff_separator("id,name;x\n1,Ada;y\n", ",") is None  # the default: no guess
    True
    """
    import csv

    lines = sample.splitlines()
    header = lines[0] if lines else ""
    if not header or default in header:
        return None
    found = [c for c in SNIFFED_SEPARATORS if c != default and c in header]
    if len(found) != 1:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=SNIFFED_SEPARATORS)
    except csv.Error:
        return None
    return found[0] if dialect.delimiter == found[0] else None


def _read_text(
    path: Path,
    fmt: Format,
    sep: str | None,
    encoding: str | None,
    notify: Callable[[str], None] | None,
) -> pd.DataFrame:
    """A CSV/TSV file, every column as text (phone numbers never turn into floats)."""
    say = notify or (lambda _message: None)
    default = fmt.sep or ","
    if sep is None:
        sample = _head(path, fmt.compression).decode(encoding or "utf-8", "replace")
        sniffed = sniff_separator(sample, default)
        if sniffed is not None:
            say(f"{path.name}: the header is {sniffed!r}-separated, read it so (--sep to choose)")
        sep = sniffed or default
    tries = (encoding,) if encoding else FALLBACK_ENCODINGS
    for i, name in enumerate(tries):
        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True,
                                compression=fmt.compression, encoding=name)
        except UnicodeDecodeError as exc:
            if encoding or i == len(tries) - 1:
                raise InputError(
                    f"cannot read {path} as {name}: {_one_line(exc)}; pass --encoding "
                    "(e.g. cp1252, latin-1, utf-16)"
                ) from exc
            continue
        if i:
            say(f"{path.name} is not UTF-8: read as {name} (--encoding to choose)")
        return frame
    raise AssertionError("unreachable")  # pragma: no cover


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


def read_dataset(
    path: str, *, sep: str | None = None, encoding: str | None = None
) -> dd.DataFrame:
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
                sep=sep or fmt.sep,
                **({"encoding": encoding} if encoding else {}),
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


def scan_polars(path: str, *, sep: str | None = None, encoding: str | None = None) -> Any:
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
            if encoding not in (None, "utf-8"):
                raise InputError("the polars engine reads UTF-8 text only: use --engine pandas "
                                 f"for --encoding {encoding}")
            frame = pl.scan_csv(source, separator=sep or fmt.sep or ",", infer_schema=False)
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
    if fmt.kind == "excel":
        raise InputError(f"--out {out}: the polars engine writes parquet, CSV or TSV; use "
                         "--engine pandas for an Excel output")
    if fmt.compression not in POLARS_COMPRESSIONS:
        raise InputError(
            f"the polars engine writes parquet, or CSV/TSV plain or .gz, not {fmt.compression}"
        )
    if is_dataset(source) and Path(out).resolve().is_relative_to(
        dataset_folder(source).resolve()
    ):
        raise InputError(f"--out {out} is inside the input folder: the next run would read it")


def sink_polars(
    frame: Any, path: str, *, replace: bool = True, escape_formulas: bool = True
) -> None:
    """Stream a Polars ``validate()`` result to ``path`` by its type, atomically: parquet with
    the run's record in its metadata (``hlr.sink_parquet``), or CSV/TSV (plain or gzip), its
    text cells neutralised (:func:`escape_formula_cells`) unless ``escape_formulas=False``.
    ``replace=False``: a file that appeared at ``path`` meanwhile is kept (:func:`publish`)."""
    if escape_formulas and output_is_text(path):
        frame = escape_formula_cells_polars(frame)
    _write_by_type(
        path,
        frame.hlr.sink_parquet,
        lambda tmp, fmt: frame.sink_csv(
            tmp,
            separator=fmt.sep or ",",
            compression=fmt.compression or "uncompressed",
            check_extension=False,
        ),
        replace=replace,
    )


def _write_by_type(
    path: str,
    parquet: Callable[[Path], Any],
    text: Callable[[Path, Format], Any],
    excel: Callable[[Path], Any] | None = None,
    *,
    replace: bool = True,
) -> None:
    """Write ``path`` by its name's type, its folder made first, through
    :func:`write_atomically`: ``parquet(tmp)``, ``text(tmp, format)`` or ``excel(tmp)``."""
    fmt = output_format(path)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt.kind == "parquet":
        write_atomically(p, parquet, replace=replace)
    elif fmt.kind == "excel":
        if excel is None:
            raise InputError(f"{p.name}: this engine writes parquet, CSV or TSV; use "
                             "--engine pandas for an Excel output")
        write_atomically(p, excel, replace=replace)
    else:
        write_atomically(p, lambda tmp: text(tmp, fmt), replace=replace)


class OutputAppearedError(InputError, FileExistsError):
    """The output path was taken by someone else (another job, a sync client) while the run
    wrote: it was left as it was, and this run's output kept beside it (``.kept``)."""

    def __init__(self, path: Path, kept: Path) -> None:
        self.path, self.kept = path, kept
        super().__init__(
            f"{path} appeared while the run was writing (another program made it) and was "
            f"left as it is; this run's output is in {kept}. Pass --force to overwrite."
        )


def _kept_name(path: Path) -> Path:
    return path.with_name(f"new-{os.getpid()}-{path.name}")


def publish(tmp: Path, path: Path, *, replace: bool = True) -> None:
    """Move the finished ``tmp`` (a file or a folder) to ``path`` in one step.

    ``replace=False`` is the no-overwrite rule *at the moment of the rename*: a file is
    hard-linked into place (``os.link`` fails if the name exists, so nothing is replaced, not
    even by a file created a microsecond earlier); a folder is renamed (POSIX ``rename`` fails on
    a non-empty folder or a file in the way). On failure :class:`OutputAppearedError` names
    where ``tmp`` was kept. ``replace=True``: ``os.replace`` (a folder in the way goes first).
    """
    if replace:
        if tmp.is_dir() and path.is_dir():
            aside = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.rename(path, aside)
            os.rename(tmp, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
        return
    try:
        if tmp.is_dir():
            os.rename(tmp, path)  # replaces at most an empty folder: nothing is lost
        else:
            _link_or_refuse(tmp, path)
            tmp.unlink()
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        kept = _kept_name(path)
        os.rename(tmp, kept)
        raise OutputAppearedError(path, kept) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        kept = _kept_name(path)
        os.rename(tmp, kept)
        raise OutputAppearedError(path, kept) from exc


def _link_or_refuse(tmp: Path, path: Path) -> None:
    """``os.link(tmp, path)``; on a filesystem without hard links (some network and FAT
    shares), an exclusive create of ``path`` and a rename over it (``O_EXCL`` is atomic)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.replace(tmp, path)
        return


def write_atomically(
    path: str | Path, write: Callable[[Path], Any], *, replace: bool = True
) -> None:
    """``write(tmp)`` to a temp name beside ``path``, then :func:`publish` it into place (the
    temp file is removed if ``write`` fails): every file pd-hlr writes for the user.
    ``replace=False`` (the command line without ``--force``): a ``path`` that appeared while
    ``write`` ran is not replaced (:class:`OutputAppearedError`). A missing folder is made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # "newdir/x.parquet": made, as --out does
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        publish(tmp, path, replace=replace)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
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
    if suffixes and suffixes[-1] == ".xlsx":
        return Format("excel")
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS and suffixes[-1] != ".zip":
        compression = COMPRESSIONS[suffixes.pop()]
    if suffixes and suffixes[-1] in (".csv", ".tsv", ".tab"):
        return Format("text", TEXT_SUFFIXES[suffixes[-1]], compression)
    raise InputError(
        f"unsupported output type {Path(path).name!r}: use .parquet, .csv, .tsv "
        "(optionally .gz, .bz2, .xz) or .xlsx"
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


def write_table(
    frame: pd.DataFrame, path: str, *, replace: bool = True, escape_formulas: bool = True
) -> None:
    """Write ``frame`` by the name's type, atomically (:func:`write_atomically`). Parquet
    carries the run's options in its metadata (``frame.hlr.to_parquet``); Excel is
    ``frame.hlr.to_excel`` (the run report on a second sheet). CSV/TSV and Excel text cells
    are neutralised (:func:`escape_formula_cells`) unless ``escape_formulas=False``. Through
    the accessor (the CLI imported it): this base module imports nothing above it."""

    def text(tmp: Path, fmt: Format) -> None:
        safe = escape_formula_cells(frame) if escape_formulas else frame
        safe.to_csv(tmp, sep=fmt.sep or ",", index=False, compression=fmt.compression)

    hlr: Any = frame.hlr  # the accessor (registered at run time: no static type)
    _write_by_type(
        path,
        hlr.to_parquet,
        text,
        lambda tmp: hlr.to_excel(tmp, escape_formulas=escape_formulas),
        replace=replace,
    )


# --- spreadsheet formulas ------------------------------------------------------------------------
#: OWASP's CSV-injection rule: a cell starting with one of these may run as a formula when the
#: file is opened in a spreadsheet (``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|...``).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = re.compile(r"[=+\-@\t\r]")
#: A plain number (``+44 7400 123456``, ``-12.5``, ``+1 (201) 555-0123``, ``+44 20 7946 0958
#: ext. 12``) cannot call a function or refer to a cell (no quotes, ``!``, ``|`` or names but an
#: extension's): left alone, so phone numbers stay readable.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9 ().\-/]*(?:(?:ext\.?|x|#) ?[0-9]+)?", re.IGNORECASE)


def is_formula_risk(text: str) -> bool:
    """Whether a spreadsheet could run ``text`` as a formula: it starts like one and is not a
    plain number.

    >>> [is_formula_risk(t) for t in ["=1+1", "@SUM(A1)", "-", "+44 7400 123456", "Vodafone"]]
    [True, True, False, False, False]
    """
    return bool(_FORMULA_START.match(text)) and not _PLAIN_NUMBER.fullmatch(text)


def _risky(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.StringDtype) or pd.api.types.is_string_dtype(col.dtype):
        text = col.astype("string")
        starts = text.str.match(_FORMULA_START.pattern, na=False)
        if not starts.any():
            return starts.astype(bool)
        plain = text.str.fullmatch(_PLAIN_NUMBER.pattern, na=False)
        return (starts & ~plain).astype(bool)
    return col.map(lambda v: isinstance(v, str) and is_formula_risk(v)).astype(bool)


def escape_formula_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would run as a formula (it starts with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, OWASP's rule) prefixed with ``'``,
    so Excel, LibreOffice and Sheets show it as text; plain numbers (``+447400123456``) are
    left alone. A new frame; the caller's is untouched (the same frame if nothing changed).

    >>> frame = pd.DataFrame({"net": ["@SUM(A1)", "EE"], "to": ["+447400123456"] * 2})
    >>> safe = escape_formula_cells(frame)
    >>> safe["net"].tolist(), safe["to"].tolist()
    (["'@SUM(A1)", 'EE'], ['+447400123456', '+447400123456'])
    """
    out = frame
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if not (pd.api.types.is_string_dtype(col.dtype) or col.dtype == object):
            continue
        risky = _risky(col)
        if risky.any():
            if out is frame:
                out = frame.copy(deep=False)
            values = col.to_numpy(dtype=object, copy=True)
            mask = risky.to_numpy()
            values[mask] = ["'" + str(v) for v in values[mask]]
            # pandas-stubs' pd.array overloads miss a column's own (object or str) dtype
            out.isetitem(i, pd.array(values, dtype=col.dtype))  # type: ignore[arg-type]
    return out


def escape_formula_cells_polars(frame: Any) -> Any:
    """:func:`escape_formula_cells` for a Polars DataFrame or LazyFrame (its String columns)."""
    import polars as pl

    names = [n for n, t in frame.collect_schema().items() if t == pl.String]
    if not names:
        return frame
    return frame.with_columns(
        pl.when(
            pl.col(n).str.contains(f"^{_FORMULA_START.pattern}")
            & ~pl.col(n).str.contains(f"^{_PLAIN_NUMBER.pattern}$")
        )
        .then(pl.lit("'") + pl.col(n))
        .otherwise(pl.col(n))
        .alias(n)
        for n in names
    )
