"""A local, spec-faithful Provero phone-HLR server (the embedded default of pd-hlr).

``POST /api/validate/phone`` as ``shared/spec/provero-phone-hlr-api.md`` describes it, on a real
HTTP/1.1 server bound to a loopback address only, with accounting (balance, charged lookups per
number), a rate limit, latency and fault knobs. It shares no request or response code with the
client: it is a second, independent reading of the spec (only ``pd_hlr._spec``'s constant tables
are shared).

- :mod:`pd_hlr.sandbox.answers`: the synthetic answers, a pure function (:func:`answer`);
- :mod:`pd_hlr.sandbox.server`: the server, its accounting and the fault knobs (:class:`Faults`).

The command line (``pd-hlr sandbox``) lives with the other commands in :mod:`pd_hlr.cli`.

Example:
    >>> from pd_hlr.sandbox import Faults, serve
    >>> with serve(token="t", balance=100, faults=Faults(error_503=0.1)) as box:
    ...     box.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

from pd_hlr.sandbox.answers import answer
from pd_hlr.sandbox.server import Faults, RequestRecord, Sandbox, SandboxStats, serve

__all__ = ["Faults", "RequestRecord", "Sandbox", "SandboxStats", "answer", "serve"]
