"""Each row read in its own region: the outer layer of `pd_hlr.normalize` (pure: no I/O).

The single-region reader (`pd_hlr.normalize`'s engine) reads distinct cells in one region,
vectorised. With a column of countries, the rows are factorized by *(cell, region)* pair
(the region values first resolved once per distinct value, `pd_hlr.regions`), the pairs are
grouped by region, and the engine runs once per region on that region's distinct cells
(twelve countries: about thirteen runs, counting the rows read with no region). Each pair is
one line of the result; the rows point at their pair's line. The lookup keys stay global: one
number written in two countries' rows is one key when both readings agree.

A row whose region value is blank or unrecognised is read in ``default_region``; without one,
with no region (international formats only). Either way its ``hlr_note`` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .regions import BLANK, OWN, RegionColumn, resolve_regions

__all__ = ["by_row_region", "fallback_note"]


def fallback_note(outcome: str, value: Any, default_region: str | None) -> str:
    """The ``hlr_note`` of a row read without its own region.

    >>> fallback_note("unrecognised", "Narnia", "GB")
    "country 'Narnia' not recognised: read in GB (default_region)"
    >>> fallback_note("blank", None, None)
    'no country in the row: national formats not read (no default_region)'
    """
    what = "no country in the row" if outcome == BLANK else f"country {value!r} not recognised"
    if default_region is None:
        return f"{what}: national formats not read (no default_region)"
    return f"{what}: read in {default_region} (default_region)"


def _as_region_column(regions: Any, n: int) -> RegionColumn:
    column = regions if isinstance(regions, RegionColumn) else resolve_regions(_series(regions))
    if len(column.codes) != n:
        raise ValueError(
            f"regions has {len(column.codes):,} values but there are {n:,} phone cells: give "
            "one region value per row"
        )
    return column


def _series(regions: Any) -> pd.Series:
    if isinstance(regions, pd.Series):
        return regions
    if isinstance(regions, str | bytes):
        raise TypeError("regions must hold one value per row (a column), not one string")
    return pd.Series(list(regions), dtype=object)


def by_row_region(
    codes: np.ndarray,
    uniq: Any,
    regions: Any,
    default_region: str | None,
    read: Callable[[Any, str | None, bool], Any],
    new_state: Callable[[int], Any],
) -> tuple[np.ndarray, Any]:
    """Lines per distinct (cell, region) pair: each row's line (the last, ``n``: the missing
    cell) and the state of the ``n`` lines.

    ``codes``/``uniq``: the factorized cells (-1: null); ``read(cells, region, own)``: the
    engine's state for distinct ``cells`` read in ``region`` (``own``: it is the rows' own
    country); ``new_state(n)``: an empty state.
    """
    column = _as_region_column(regions, len(codes))
    # One key per region value: recognised values by their region (so "DE", "Germany" and
    # "+49" share their cells' lines); blank ones together; each unrecognised value apart,
    # since its note names it.
    keys: list[Any] = [
        r if o == OWN else (o, str(v))
        for v, r, o in zip(column.values, column.regions, column.outcomes, strict=True)
    ]
    key_codes, key_uniq = pd.factorize(pd.Series([*keys, (BLANK, "")], dtype=object))
    blank_key = int(key_codes[-1])
    value_key = np.asarray(key_codes[:-1], dtype=np.int64)
    n_keys = len(key_uniq)
    row_key = np.where(column.codes < 0, blank_key, value_key[column.codes] if len(value_key)
                       else blank_key).astype(np.int64)

    present = codes >= 0
    pair = np.where(present, codes.astype(np.int64) * n_keys + row_key, -1)
    line, pairs = pd.factorize(pair[present])
    pairs = np.asarray(pairs, dtype=np.int64)
    n = len(pairs)
    row_line = np.full(len(codes), n, dtype=np.intp)
    row_line[present] = line

    key_region: list[str | None] = []
    key_note: list[str | None] = []
    for key in key_uniq:
        if isinstance(key, tuple):
            outcome, value = key
            key_region.append(default_region)
            key_note.append(fallback_note(outcome, value, default_region))
        else:
            key_region.append(key)
            key_note.append(None)

    state = new_state(n)
    arrays = {k: v for k, v in vars(state).items() if isinstance(v, np.ndarray) and len(v) == n}
    pair_cell, pair_key = pairs // n_keys, pairs % n_keys
    # a region's own rows and the rows that fall back to it are read apart: a row's own
    # country is evidence about its cells (see normalize's strict rule), a fallback is not
    key_group = [(key_region[k], key_note[k] is None) for k in range(n_keys)]
    group_codes, group_uniq = pd.factorize(pd.Series(key_group, dtype=object))
    pair_group = np.asarray(group_codes, dtype=np.int64)[pair_key]
    for g, lines in pd.Series(np.arange(n)).groupby(pair_group, sort=False):
        region, own = group_uniq[g]
        at = lines.to_numpy()
        cells, inverse = np.unique(pair_cell[at], return_inverse=True)
        read_in = region if isinstance(region, str) else None
        group = read(uniq[cells], read_in, bool(own) and read_in is not None)
        for name, target in arrays.items():
            target[at] = getattr(group, name)[inverse]
    notes = np.asarray(key_note, dtype=object)[pair_key]
    noted = np.flatnonzero(pd.notna(notes) & (state.source != "missing"))
    if len(noted):
        state.add_note(noted, notes[noted].tolist())
    return row_line, state
