"""pd-hlr: enrich pandas DataFrames of phone numbers with HLR lookups from the Provero API.

``import pd_hlr`` registers the ``hlr`` accessor on DataFrame and Series:

>>> import pandas as pd, pd_hlr
>>> df = pd.DataFrame({"phone": ["+44 7400 123456", "07400 123457", "n/a"]})
>>> df.hlr.estimate("phone", default_region="GB", client=client, cache=cache_dir).to_look_up
2
>>> out = df.hlr.validate("phone", default_region="GB", detailed=True, client=client,
...                       cache=cache_dir)
>>> out.hlr.status().tolist()[2], out.hlr.report().looked_up
('missing', 2)

The token comes from ``HLRClient(token=...)`` or ``PROVERO_API_TOKEN``. The embedded sandbox
(``pd_hlr.sandbox``, ``pd-hlr sandbox``) answers like the real API with synthetic data (here
``client`` points at one).
"""

from __future__ import annotations

from . import accessor as _accessor  # registers DataFrame.hlr and Series.hlr
from . import datasets
from .cache import HLRCache
from .client import HLRClient
from .errors import (
    APIError,
    AuthenticationError,
    BudgetExceededError,
    CacheFolderError,
    CacheNotWritableError,
    ColumnConflictError,
    HLRError,
    InsufficientBalanceError,
    RateLimitError,
    RunInterrupted,
    ServiceUnavailableError,
    StaleClaimsError,
    TransportError,
    ValidationError,
)
from .report import Estimate, RunReport
from .settings import LookupOptions

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "BudgetExceededError",
    "CacheFolderError",
    "CacheNotWritableError",
    "ColumnConflictError",
    "Estimate",
    "HLRCache",
    "HLRClient",
    "HLRError",
    "InsufficientBalanceError",
    "LookupOptions",
    "RateLimitError",
    "RunInterrupted",
    "RunReport",
    "ServiceUnavailableError",
    "StaleClaimsError",
    "TransportError",
    "ValidationError",
    "__version__",
    "datasets",
]

del _accessor
