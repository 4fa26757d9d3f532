"""One way to warn: the warning points at the caller's line, never at pd-hlr's internals.

``warnings.warn(..., stacklevel=N)`` with a fixed N points somewhere different for every face
(a notebook cell, the CLI, a Dask call), so pd-hlr computes the level: the first frame whose
code lives outside the ``pd_hlr`` package.

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     warn("check this")
>>> caught[0].message.args[0], caught[0].category.__name__
('check this', 'UserWarning')
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType

__all__ = ["outside_stacklevel", "warn"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_stacklevel() -> int:
    """The ``stacklevel`` for our caller's ``warnings.warn(...)`` call that points at the first
    frame outside pd_hlr."""
    frame: FrameType | None = sys._getframe(1)  # the caller (calls warnings.warn): stacklevel 1
    level = 1
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            return level
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside pd_hlr."""
    warnings.warn(message, category, stacklevel=outside_stacklevel())
