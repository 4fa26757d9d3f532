"""Sample data that ships with pd-hlr: try it without a file of your own.

:func:`contacts` is the synthetic contact list the quickstart, the notebook and ``pd-hlr demo`` use:
3,000 made-up people whose ``phone`` column holds every format (and every kind of junk) a real
list does. Nothing in it is a real person or a real number.

>>> df = contacts()
>>> df.shape, list(df.columns)[:3]
((3000, 7), ['id', 'first_name', 'last_name'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["contacts", "contacts_file"]

_CONTACTS = "contacts.csv"


def contacts() -> pd.DataFrame:
    """The sample contact list (3,000 rows; every column as text, as a phone column should be
    read): ``id, first_name, last_name, company, country, phone, signup_date``.

    >>> contacts()["country"].value_counts().index[0]
    'GB'
    """
    with resources.files(__package__).joinpath(_CONTACTS).open("rb") as fh:
        return pd.read_csv(fh, dtype=str)


@contextlib.contextmanager
def contacts_file() -> Iterator[Path]:
    """The sample list as a CSV file on disk, for as long as the ``with`` block lasts (the
    installed file itself; a temporary copy only if pd-hlr is imported from a zip).

    >>> with contacts_file() as path:
    ...     path.name
    'contacts.csv'
    """
    with resources.as_file(resources.files(__package__).joinpath(_CONTACTS)) as path:
        yield Path(path)
