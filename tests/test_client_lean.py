"""The client's lean per-lookup path gives what the general one does: the request bodies made
without ``json.dumps``, the answers that skip the surrogate / depth / token walks (only those
whose bytes prove the walk would change nothing), and the counters kept without a lock, judged
against the sandbox's own request log and charge ledger."""

from __future__ import annotations

import json
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pd_hlr import HLRClient, sandbox
from pd_hlr._json import MAX_DEPTH, repaired
from pd_hlr.classify import Answer, classify_answer

PHONE = "+441302778473"
NUMBERS = [f"+4474009{i:05d}" for i in range(400)]
OPTIONS = [{}, {"detailed": True}, {"detailed": False, "roaming": True, "route": "detailed"}]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(number=st.text(max_size=20), options=st.sampled_from(OPTIONS))
def test_request_bodies_are_the_json_of_the_number_and_options(
    number: str, options: dict[str, Any]
) -> None:
    client = HLRClient(token="t")
    opts = client._options(**options)
    for n in (number, "+" + number, PHONE, "+" + "".join(c for c in number if c.isdigit())):
        body = client._payloads([n], opts)[n]
        assert body == client._payload(n, opts)
        assert json.loads(body) == {"phone": n, **opts}


@settings(max_examples=300, deadline=None)
@given(extra=st.dictionaries(st.text(), json_values, max_size=4), ensure_ascii=st.booleans())
def test_a_result_is_what_the_walk_gives_whether_or_not_it_is_walked(
    extra: dict[str, Any], ensure_ascii: bool
) -> None:
    result = {**extra, "to": PHONE}
    try:
        raw = json.dumps({"results": [result]}, ensure_ascii=ensure_ascii).encode()
    except UnicodeEncodeError:  # a lone surrogate, unencodable unescaped: not an answer
        return
    walked, fixed = repaired(json.loads(raw)["results"][0])
    assert classify_answer(200, raw, phone=PHONE) == Answer(walked, fixed)


def _nested(levels: int) -> bytes:
    head = b'{"results":[{"to":"' + PHONE.encode() + b'","x":'
    return head + b"[" * levels + b"]" * levels + b"}]}"


def test_nesting_is_bounded_at_the_same_depth_on_both_paths() -> None:
    # the result is depth 0: MAX_DEPTH - 1 lists inside it are stored, one more is not
    assert isinstance(classify_answer(200, _nested(MAX_DEPTH - 1), phone=PHONE), Answer)
    assert classify_answer(200, _nested(MAX_DEPTH), phone=PHONE).kind == "malformed"
    few = classify_answer(200, _nested(3), phone=PHONE)
    assert isinstance(few, Answer) and few.result["x"] == [[[]]]


def test_a_token_the_answer_spells_with_escapes_is_scrubbed(
    make_sandbox: Any, client_for: Any
) -> None:
    """A Latin-1 token echoed by the gateway is written ``\\u00f6``-escaped: its bytes are not
    in the body, and it is still found and replaced."""
    token = "t\u00f6ken-lean-0123456789"
    sb = make_sandbox(token=token, faults=sandbox.Faults(echo_token=1.0))
    client = client_for(sb, token=token)
    out = client.lookup_many(NUMBERS[:20], workers=4)
    assert sb.stats().charged == {n: 1 for n in NUMBERS[:20]}
    for n, result in out.items():
        assert result["to"] == n
        assert result["gateway"] == {"request_headers": {"Authorization": "Bearer ***"}}
        assert token not in json.dumps(result, ensure_ascii=False)


def test_counters_stay_exact_when_many_threads_count_at_once(
    make_sandbox: Any, client_for: Any
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(error_503=0.2, surrogate=0.2))
    client = client_for(sb, backoff_factor=0, max_retries=8)
    rounds = [NUMBERS[k::4] for k in range(4)]
    threads = [
        threading.Thread(target=client.lookup_many, args=(r,), kwargs={"workers": 16})
        for r in rounds
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    log = sb.log()
    stats = client.stats
    assert stats.requests == len(log)
    assert stats.failures.get("server_error", 0) == sum(r.status == 503 for r in log)
    assert stats.retries == len(log) - len(NUMBERS)
    assert stats.repaired == sum("surrogate" in r.faults for r in log if r.charged)
    assert sb.stats().charged == {n: 1 for n in NUMBERS}


@settings(max_examples=200, deadline=None)
@given(
    texts=st.tuples(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1)),
    result=st.dictionaries(st.text(), json_values, max_size=4),
)
def test_a_journal_line_is_the_json_of_its_entry(
    texts: tuple[str, str, str], result: dict[str, Any]
) -> None:
    from datetime import UTC, datetime

    from pd_hlr.cache.entry import Entry

    entry = Entry(*texts, result, datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))
    head, tail = entry.line_parts()
    fields = {"n": texts[0], "o": texts[1], "a": texts[2], "t": "2024-05-01T12:00:00.123456+00:00"}
    expected = json.dumps({**fields, "r": result}, separators=(",", ":"), allow_nan=True)
    assert (head + tail).decode("ascii") == expected + "\n"
