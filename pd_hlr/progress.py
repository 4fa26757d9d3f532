"""The progress bar of a run, and notebook detection.

The bar counts **lookups**, the numbers this run pays for, so its rate and ETA are about
lookups; cache hits, failures, the spend so far and (once the server signalled a limit) the
adaptive pace are shown beside it::

    HLR lookups:  45%|████▌     | 9/20 [00:05<00:06,  1.80/s] cached 840 · failed 1 · spend ≈ 0.048

It redraws at least every 0.5 s (:attr:`Progress.interval`), so a run never looks frozen. It
draws a text bar in a terminal, a widget in a notebook with ipywidgets (replaced by the final
line when the run ends, so a saved notebook still shows it), and nothing elsewhere unless
``progress=True``. Where it draws, in full: ``docs/internals/progress.md``.

>>> bar = Progress(3, cached=5, price=Decimal("0.01"), enabled=False)
>>> bar.done(failed=False); bar.done(failed=True); bar.close()
>>> bar.looked_up, bar.failed, bar.cached, bar.spend
(1, 1, 5, Decimal('0.01'))
>>> bar = Progress(3, enabled=False); bar.served(2)   # another process answered two of them
>>> bar.total, bar.cached
(1, 2)
"""

from __future__ import annotations

import html
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any

from .report import money

__all__ = ["Progress", "in_notebook", "progress_enabled"]

#: Left of the bar; the bar itself; right of it (tqdm's ``bar_format`` fields plus ours).
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {done}/{todo} [{elapsed}<{remaining}, "
    "{rate_noinv_fmt}] {tail}"
)
#: Width of the text bar when it cannot be measured (a pipe, a notebook, a captured stream).
DEFAULT_WIDTH = 100


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, JupyterLab, VS Code, Colab), not in a terminal
    IPython or a Qt console.

    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    names = {cls.__name__ for cls in type(shell).__mro__}
    if "ZMQInteractiveShell" not in names:
        return False
    return not any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ)


def progress_enabled(progress: bool | None, stream: Any = None) -> bool:
    """``progress`` if given; else True in a notebook or when stderr is a terminal.

    >>> progress_enabled(True), progress_enabled(False)
    (True, False)
    """
    if progress is not None:
        return bool(progress)
    if in_notebook():
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def _widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def _text_width(stream: Any) -> int | None:
    """A fixed width (``$COLUMNS``, else :data:`DEFAULT_WIDTH` off a terminal), or None to
    follow the terminal's width as it changes."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return None
    except ValueError:
        pass
    return DEFAULT_WIDTH


#: Room the text around the counts and the tail takes (percentage, brackets, times, rate),
#: and the least bar worth drawing.
_FRAME_CHARS, _MIN_BAR = 36, 10


def _bar_class(base: type[Any], fields: Callable[[], dict[str, Any]]) -> type:
    """``base`` (a tqdm class) with our ``fields()`` available to ``bar_format``, made only when
    the bar is drawn (not per answer). In a narrow terminal the short words are used, so the bar
    and the spend stay visible."""

    class Bar(base):
        pass

    Bar.fields = staticmethod(fields)  # the first draw happens inside tqdm's __init__

    def format_dict(self: Any) -> dict[str, Any]:
        d = {**base.format_dict.fget(self), **self.fields()}
        ncols = d.get("ncols")
        need = len(d["prefix"]) + len(d["done"]) + len(d["todo"]) + len(d["tail"]) + _FRAME_CHARS
        if isinstance(ncols, int) and 0 < ncols < need + _MIN_BAR:
            d["prefix"], d["tail"] = "HLR", d["short_tail"]
        return d

    Bar.format_dict = property(format_dict)
    return Bar


class _CellLine:
    """A line shown in a notebook cell: text/plain is the bar's text, text/html a native
    ``<progress>`` element between the same words. No widget: it survives saving and static
    renders (nbconvert, code hosts)."""

    def __init__(self, text: str, done: int, total: int) -> None:
        self.text, self.done, self.total = text, done, total

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        left, bar, right = self.text.partition("|")
        if bar and self.total:
            right = right.rpartition("|")[2]
            bar = (
                f" <progress value='{self.done}' max='{self.total}' "
                "style='width:14em;vertical-align:middle'></progress> "
            )
        else:
            left, bar, right = self.text, "", ""
        return (
            "<div style='font-family:monospace;white-space:pre'>"
            f"{html.escape(left)}{bar}{html.escape(right.strip())}</div>"
        )


class _CellStream:
    """A file for tqdm's text bar that redraws one notebook output in place (a display handle)
    instead of appending ``\\r`` frames to the cell's stderr."""

    def __init__(self, owner: Progress) -> None:
        self._owner = owner
        self._handle: Any = None

    def write(self, text: str) -> None:
        line = text.rsplit("\r", 1)[-1].strip()
        if line:
            self.show(self._owner._cell_line(line))

    def show(self, obj: Any) -> None:
        from IPython.display import display

        if self._handle is None:
            self._handle = display(obj, display_id=True)
        else:
            self._handle.update(obj)

    def flush(self) -> None:
        pass


class Progress:
    """The bar of one run (thread-safe): ``done()`` per lookup, ``close()`` at the end.

    Args:
        to_look_up: the numbers this run will look up (the bar's total).
        cached: the numbers served from the cache (shown beside the bar).
        price: the price per lookup (the spend so far is shown).
        enabled: draw anything at all (see :func:`progress_enabled`).
        file: where the terminal bar goes (default ``sys.stderr``).
        rate: returns the requests/second the client's limiter allows now, or None when
            unthrottled (e.g. :meth:`pd_hlr.client.HLRClient.current_rate`); shown when not
            None.
    """

    #: Longest time between two redraws (seconds).
    interval: float = 0.5
    #: The clock of the bar's elapsed time, rate and redraw decisions (replace in tests).
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self,
        to_look_up: int,
        *,
        cached: int = 0,
        price: Decimal = Decimal("0"),
        enabled: bool = True,
        desc: str = "HLR lookups",
        file: IO[str] | None = None,
        rate: Callable[[], float | None] | None = None,
    ) -> None:
        self.total = int(to_look_up)
        self._rate = rate
        self.cached = int(cached)
        self.price = price
        self.looked_up = 0
        self.failed = 0
        self.desc = desc
        self._lock = threading.RLock()
        self._bar: Any = None
        self._cell: _CellStream | None = None
        self._widget_handle: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._closed = False
        if not enabled:
            return
        if self.total == 0:
            self._show_once(f"{desc}: nothing to look up; cached {self.cached:,}", file)
            return
        self._bar = self._make_bar(file)
        self._ticker = threading.Thread(target=self._tick_loop, name="pd_hlr-progress", daemon=True)
        self._ticker.start()

    # -- counters ---------------------------------------------------------------------------------
    @property
    def spend(self) -> Decimal:
        """The spend so far: answers received, at the price."""
        return self.price * self.looked_up

    def pace(self) -> str:
        """The limiter's allowed rate as the bar shows it ("" when unthrottled).

        >>> Progress(5, enabled=False, rate=lambda: 38.4).pace()
        ' · pace 38/s'
        >>> Progress(5, enabled=False, rate=lambda: None).pace()
        ''
        """
        rate = self._rate() if self._rate is not None else None
        if rate is None:
            return ""
        return f" · pace {rate:,.0f}/s" if rate >= 10 else f" · pace {rate:.2g}/s"

    def _fields(self) -> dict[str, Any]:
        pace = self.pace()
        return {
            "done": f"{self.looked_up + self.failed:,}",
            "todo": f"{self.total:,}",
            "tail": f"cached {self.cached:,} · failed {self.failed:,}{pace} · spend ≈ "
            f"{money(self.spend, self.price)}",
            "short_tail": f"cached {self.cached:,} · failed {self.failed:,}{pace} · "
            f"≈{money(self.spend, self.price)}",
        }

    def done(self, *, failed: bool) -> None:
        """One number finished: answered (``failed=False``) or failed after retries."""
        with self._lock:
            if failed:
                self.failed += 1
            else:
                self.looked_up += 1
            if self._bar is not None and not self._closed:
                self._bar.update(1)  # a redraw (at most every ``interval``) reads the counts

    def served(self, n: int) -> None:
        """``n`` numbers this run meant to look up were answered by another process sharing
        the cache (and so were not paid for here): they leave the total and join the cached."""
        if not n:
            return
        with self._lock:
            self.cached += n
            self.total = max(self.total - n, self.looked_up + self.failed)
            if self._bar is not None and not self._closed:
                self._bar.total = self.total
                self._bar.refresh()

    def tick(self) -> None:
        """Redraw if :attr:`interval` has passed since the last redraw (the ticker thread
        calls this; so the elapsed time and ETA move even while no answer arrives)."""
        with self._lock:
            bar = self._bar
            if bar is None or self._closed:
                return
            if self.clock() - bar.last_print_t >= self.interval:
                bar.refresh()  # the pace moves without answers too
                bar.last_print_t = self.clock()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def close(self) -> None:
        """Draw the final line and stop redrawing (safe to call twice)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            bar = self._bar
            if bar is None:
                return
            final = self._final_text()
            bar.close()
            if self._widget_handle is not None:
                self._widget_handle.update(self._cell_line(final))
            elif self._cell is not None:
                self._cell.show(self._cell_line(final))

    # -- drawing ----------------------------------------------------------------------------------
    def _final_text(self) -> str:
        """The last line, with the run's overall rate (not a moving average)."""
        bar = self._bar
        d = dict(bar.format_dict)
        elapsed = self.clock() - bar.start_t
        d["rate"] = (bar.n / elapsed) if elapsed > 0 and bar.n else None
        d["ncols"] = d.get("ncols") or DEFAULT_WIDTH
        return bar.format_meter(**d)

    def _cell_line(self, text: str) -> _CellLine:
        return _CellLine(text, self.looked_up + self.failed, self.total)

    def _show_once(self, line: str, file: IO[str] | None) -> None:
        if file is None and in_notebook():
            _CellStream(self).show(_CellLine(line, 0, 0))
            return
        stream = sys.stderr if file is None else file
        stream.write(line + "\n")
        stream.flush()

    def _make_bar(self, file: IO[str] | None) -> Any:
        common: dict[str, Any] = {
            "total": self.total,
            "desc": self.desc,
            "bar_format": BAR_FORMAT,
            "unit": "",
            "miniters": 1,  # never the dynamic miniters that froze a partly cached run
            "mininterval": self.interval,
            "smoothing": 0.1,
            "leave": True,
        }
        if file is None and in_notebook():
            if _widgets_available():
                from tqdm.notebook import tqdm as notebook_tqdm

                bar = _bar_class(notebook_tqdm, self._fields)(**common, display=False)
                self._adopt_clock(bar)
                from IPython.display import display

                self._widget_handle = display(bar.container, display_id=True)
                return bar
            self._cell = _CellStream(self)
            bar_class = _bar_class(_std_tqdm(), self._fields)
            bar = bar_class(**common, file=self._cell, ncols=DEFAULT_WIDTH, ascii=False)
            return self._adopt_clock(bar)
        stream = sys.stderr if file is None else file
        width = _text_width(stream)
        bar = _bar_class(_std_tqdm(), self._fields)(
            **common, file=stream, ncols=width, dynamic_ncols=width is None
        )
        return self._adopt_clock(bar)

    def _adopt_clock(self, bar: Any) -> Any:
        bar._time = self.clock
        bar.start_t = bar.last_print_t = self.clock()
        return bar


def _std_tqdm() -> type:
    from tqdm.std import tqdm

    return tqdm
