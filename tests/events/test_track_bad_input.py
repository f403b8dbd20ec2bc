"""POST /api/track with malformed input: every case gets a clear 4xx (or the event is rejected
by index while the rest is stored), never a 500, and never half a write."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.events.models import Event
from tests.events.track_helpers import EVENT, error, event, ok, stored_names, warnings_of


def raw_json(payload: Any) -> bytes:
    """JSON as a sloppy client writes it: NaN literals, lone surrogates as escapes."""
    return json.dumps(payload, allow_nan=True).encode()


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


# --- bodies that are not a JSON object ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"hello",
        b"{'event_name': 'x'}",
        b'{"event_name": "x", "distinct_id": "u"} trailing',
        b'{"event_name": "x",}',
        b"\x00\x01\x02",
        b"\xef\xbb\xbf",
    ],
)
def test_not_json_is_400(tracker, raw):
    err = error(tracker.post(None, raw=raw), 400, "invalid_json")

    assert "not valid JSON" in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n\t\r\n"])
def test_empty_body_is_400(tracker, raw):
    err = error(tracker.post(None, raw=raw), 400, "empty_body")

    assert "empty" in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_name": "caf\xe9", "distinct_id": "u"}',  # latin-1
        b'{"event_name": "x", "distinct_id": "\xff\xfe"}',
        b'{"event_name": "x", "distinct_id": "u", "properties": {"k": "\xed\xa0\x80"}}',  # CESU
        b'{"event_name": "x", "distinct_id": "u\xc3"}',  # truncated sequence
    ],
)
def test_invalid_utf8_is_400(tracker, raw):
    err = error(tracker.post(None, raw=raw), 400, "invalid_json")

    assert "UTF-8" in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["properties", "timestamp", "top"])
def test_nan_and_infinity_literals_are_400(tracker, literal, where):
    if where == "properties":
        raw = b'{"event_name": "x", "distinct_id": "u", "properties": {"v": %s}}'
    elif where == "timestamp":
        raw = b'{"event_name": "x", "distinct_id": "u", "timestamp": %s}'
    else:
        raw = b"%s"

    err = error(tracker.post(None, raw=raw % literal.encode()), 400, "invalid_json")

    assert literal.lstrip("-") in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_deeply_nested_body_is_400(tracker, depth):
    err = error(tracker.post(None, raw=b"[" * depth + b"]" * depth), 400, "invalid_json")

    assert "nested too deeply" in err["message"]
    assert not Event.objects.exists()


def test_a_deeply_nested_object_body_is_400(tracker):
    raw = b'{"a":' * 100_000 + b"1" + b"}" * 100_000

    error(tracker.post(None, raw=raw), 400, "invalid_json")

    assert not Event.objects.exists()


def test_an_unclosed_deep_body_is_400(tracker):
    error(tracker.post(None, raw=b"[" * 500_000), 400, "invalid_json")

    assert not Event.objects.exists()


# --- NUL characters -----------------------------------------------------------------------------


def test_nul_in_properties_is_stripped_with_a_warning(tracker):
    batch = [
        event("nul_value", properties={"name": "a\x00b", "list": ["\x00", {"deep": "x\x00"}]}),
        event("nul_key", properties={"ke\x00y": 1}),
        event("nul_context", context={"locale": "en\x00-US"}),
        event("clean", properties={"name": "ab"}),
    ]

    body = ok(tracker.post({"batch": batch}))

    assert body["accepted"] == 4
    assert body["rejected"] == []
    assert warnings_of(body) == {(0, "properties"), (1, "properties"), (2, "context")}
    assert all("NUL" in w["warning"] for w in body["warnings"])
    stored = {e.event_name: e for e in Event.objects.all()}
    assert stored["nul_value"].properties == {"name": "ab", "list": ["", {"deep": "x"}]}
    assert stored["nul_key"].properties == {"key": 1}
    assert stored["nul_context"].context["locale"] == "en-US"


@pytest.mark.parametrize("field", ["event_name", "distinct_id", "category", "message_id"])
def test_nul_in_a_text_field_rejects_the_event(tracker, field):
    bad = {**event("bad"), field: "a\x00b"}

    body = ok(tracker.post({"batch": [bad, event("good")]}))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, field)
    assert "NUL" in rejected["error"]
    assert stored_names() == ["good"]


def test_nul_in_a_header_user_agent_does_not_500(tracker):
    body = ok(tracker.post(EVENT, HTTP_USER_AGENT="Mozilla\x00/5.0"))

    assert body["accepted"] == 1
    assert "\x00" not in Event.objects.get().context["user_agent"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_WRITE_KEY": "key\x00"},
        {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"key\x00:").decode()},
    ],
)
def test_nul_in_the_write_key_is_401(tracker, headers):
    error(tracker.post(EVENT, auth="none", **headers), 401, "unauthorized")

    assert not Event.objects.exists()


def test_nul_in_the_body_write_key_is_401(tracker):
    error(tracker.post({**EVENT, "writeKey": "k\x00ey"}, auth="none"), 401, "unauthorized")

    assert not Event.objects.exists()


# --- bad unicode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"event_name": "x\ud800"}, "event_name"),
        ({"distinct_id": "\udfff-user"}, "distinct_id"),
        ({"category": "\ud800"}, "category"),
        ({"message_id": "m-\ud800"}, "message_id"),
        ({"session_id": "\ud800"}, "session_id"),
        ({"properties": {"name": "\ud800"}}, "properties"),
        ({"properties": {"\udc00key": 1}}, "properties"),
        ({"properties": {"list": [["\ud83d"]]}}, "properties"),
        ({"context": {"page": {"title": "\ud800"}}}, "context"),
        ({"timestamp": "2026-01-01T00:00:00\ud800"}, "timestamp"),
    ],
)
def test_lone_surrogates_reject_the_event(tracker, bad, field):
    raw = raw_json({"batch": [{**EVENT, **bad}, event("good")]})
    assert b"\\ud" in raw

    body = ok(tracker.post(None, raw=raw))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, field)
    assert stored_names() == ["good"]


def test_a_valid_surrogate_pair_is_an_emoji(tracker):
    ok(tracker.post(None, raw=b'{"event_name": "\\ud83d\\ude00", "distinct_id": "u"}'))

    assert stored_names() == ["\U0001f600"]


def test_a_single_event_with_a_lone_surrogate_is_400(tracker):
    response = tracker.post(None, raw=raw_json({**EVENT, "properties": {"v": "\ud800"}}))

    assert error(response, 400, "no_valid_event")["field"] == "properties"
    assert not Event.objects.exists()


@pytest.mark.parametrize("key", ["\ud800", "k\udfffey"])
def test_a_lone_surrogate_write_key_in_the_body_is_401(tracker, key):
    error(tracker.post(None, raw=raw_json({**EVENT, "writeKey": key}), auth="none"), 401)

    assert not Event.objects.exists()


def test_a_lone_surrogate_batch_sent_at_is_400(tracker):
    response = tracker.post(None, raw=raw_json({"sent_at": "\ud800", "batch": [EVENT]}))

    assert error(response, 400)["field"] == "sent_at"
    assert not Event.objects.exists()


# --- huge numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1.5e999", b"-9e99999"])
def test_numbers_out_of_float_range_in_properties_reject_the_event(tracker, number):
    raw = (
        b'{"batch": [{"event_name": "bad", "distinct_id": "u", "properties": {"n": %s}},'
        b' {"event_name": "good", "distinct_id": "u", "properties": {"n": 12.5}}]}'
    ) % number

    body = ok(tracker.post(None, raw=raw))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, "properties")
    assert "out of range" in rejected["error"]
    assert stored_names() == ["good"]
    assert Event.objects.get().properties == {"n": 12.5}


@pytest.mark.parametrize(
    ("number", "value"),
    [
        (b"1" + b"0" * 30, 1e30),
        (b"-" + b"9" * 25, -1e25),
        (b"18446744073709551616", 2.0**64),
        (b"1e308", 1e308),
    ],
)
def test_integers_beyond_64_bits_are_kept_as_floats(tracker, number, value):
    # As JavaScript reads them: the magnitude is kept, the last digits are not.
    raw = b'{"event_name": "x", "distinct_id": "u", "properties": {"n": %s}}' % number

    ok(tracker.post(None, raw=raw))

    assert Event.objects.get().properties["n"] == pytest.approx(value)


def test_a_huge_integer_beside_an_infinite_float_rejects_only_its_event(tracker):
    # 1e400 sends the body through the tolerant parser, which keeps 10**30 exact: too big to store.
    raw = (
        b'{"batch": [{"event_name": "a", "distinct_id": "u", "properties": {"n": 1e400}},'
        b' {"event_name": "b", "distinct_id": "u", "properties": {"n": 1%s}},'
        b' {"event_name": "good", "distinct_id": "u"}]}'
    ) % (b"0" * 30)

    body = ok(tracker.post(None, raw=raw))

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (0, "properties"),
        (1, "properties"),
    ]
    assert stored_names() == ["good"]


def test_big_but_64_bit_numbers_are_kept(tracker):
    properties = {"max": 2**63 - 1, "min": -(2**63), "unsigned": 2**64 - 1, "tiny": 5e-324}

    ok(tracker.post({**EVENT, "properties": properties}))

    assert Event.objects.get().properties == properties


@pytest.mark.parametrize(
    ("field", "number"),
    [
        ("event_name", b"1e400"),
        ("distinct_id", b"1e400"),
        ("timestamp", b"1e400"),
        ("timestamp", b"1" + b"0" * 30),
        ("message_id", b"1e400"),
        ("category", b"1" + b"0" * 30),
        ("context", b"1e400"),
    ],
)
def test_huge_numbers_in_fields_reject_the_event(tracker, field, number):
    bad = b'{"event_name": "bad", "distinct_id": "u", "%s": %s}' % (field.encode(), number)
    raw = b'{"batch": [%s, {"event_name": "good", "distinct_id": "u"}]}' % bad

    body = ok(tracker.post(None, raw=raw))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, field)
    assert stored_names() == ["good"]


def test_a_number_with_thousands_of_digits_is_400(tracker):
    raw = b'{"event_name": "x", "distinct_id": "u", "properties": {"n": %s}}' % (b"7" * 5000)

    error(tracker.post(None, raw=raw), 400, "invalid_json")

    assert not Event.objects.exists()


def test_huge_number_as_the_whole_body_is_400(tracker):
    error(tracker.post(None, raw=b"1e400"), 400, "invalid_body")

    assert not Event.objects.exists()


# --- deep nesting inside an event ---------------------------------------------------------------


def test_properties_nested_over_255_levels_reject_the_event(tracker):
    batch = [event("deep", properties=nested(300)), event("good", properties=nested(100))]
    raw = json.dumps({"batch": batch}).encode()

    body = ok(tracker.post(None, raw=raw))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, "properties")
    assert "nested too deeply" in rejected["error"]
    assert stored_names() == ["good"]
    assert Event.objects.get().properties == nested(100)


def test_deep_arrays_in_context_reject_the_event(tracker):
    deep: Any = []
    for _ in range(400):
        deep = [deep]
    raw = json.dumps({"batch": [event("deep", context={"x": deep}), event("good")]}).encode()

    body = ok(tracker.post(None, raw=raw))

    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (0, "context")
    assert stored_names() == ["good"]


# --- size limits (413) --------------------------------------------------------------------------


def test_a_single_event_over_32_kb_is_413(tracker):
    response = tracker.post({**EVENT, "properties": {"blob": "x" * 33_000}})

    err = error(response, 413, "payload_too_large")
    assert "32768" in err["message"]
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 0
    assert not Event.objects.exists()


def test_an_event_just_under_32_kb_is_accepted(tracker):
    ok(tracker.post({**EVENT, "properties": {"blob": "x" * 31_000}}))

    assert Event.objects.count() == 1


def test_an_event_over_32_kb_inside_a_batch_is_rejected_by_index(tracker):
    batch = [event("a"), event("huge", properties={"blob": "x" * 40_000}), event("b")]

    body = ok(tracker.post({"batch": batch}))

    assert body["accepted"] == 2
    [rejected] = body["rejected"]
    assert rejected["index"] == 1
    assert "limit" in rejected["error"]
    assert stored_names() == ["a", "b"]


def test_a_batch_of_only_oversized_and_invalid_events_is_400(tracker):
    batch = [event("huge", properties={"blob": "x" * 40_000}), {"event_name": "no_user"}]

    response = tracker.post({"batch": batch})

    error(response, 400, "no_valid_event")
    assert [r["index"] for r in response.json()["rejected"]] == [0, 1]
    assert not Event.objects.exists()


def _big_batch(total_bytes: int, n: int = 1000) -> bytes:
    """A batch of n events of about total_bytes in all."""

    def build(pad: int) -> bytes:
        return orjson.dumps(
            {"batch": [event(f"e{i}", f"u{i}", properties={"pad": "x" * pad}) for i in range(n)]}
        )

    return build((total_bytes - len(build(0))) // n)


def test_a_request_over_1_mb_is_413(tracker):
    raw = _big_batch(1024 * 1024 + 10_000)
    assert len(raw) > 1024 * 1024

    err = error(tracker.post(None, raw=raw), 413, "payload_too_large")

    assert "1048576" in err["message"]
    assert not Event.objects.exists()


def test_a_request_just_under_1_mb_is_accepted(tracker):
    raw = _big_batch(1024 * 1024 - 2_000)
    assert 1000 * 1024 < len(raw) <= 1024 * 1024

    body = ok(tracker.post(None, raw=raw))

    assert body["accepted"] == Event.objects.count() == 1000


def test_a_declared_content_length_over_1_mb_is_413_without_reading(tracker):
    response = tracker.post(EVENT, CONTENT_LENGTH=str(5 * 1024 * 1024))

    error(response, 413, "payload_too_large")
    assert not Event.objects.exists()


@pytest.mark.parametrize("declared", ["-5", "abc", ""])
def test_a_nonsense_content_length_is_not_a_500(tracker, declared):
    response = tracker.post(EVENT, CONTENT_LENGTH=declared)

    assert response.status_code == 400
    assert not Event.objects.exists()


# --- gzip ---------------------------------------------------------------------------------------


def test_a_gzip_body_is_accepted(tracker):
    body = ok(tracker.post({"batch": [event("a"), event("b")]}, gzip_body=True))

    assert body["accepted"] == 2
    assert stored_names() == ["a", "b"]


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP", "deflate"])
def test_gzip_and_deflate_encodings(tracker, encoding):
    data = orjson.dumps(EVENT)
    raw = zlib.compress(data) if encoding == "deflate" else gzip.compress(data)

    ok(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING=encoding))

    assert Event.objects.count() == 1


def test_a_gzip_body_inflating_over_1_mb_is_413(tracker):
    raw = gzip.compress(_big_batch(1024 * 1024 + 10_000))
    assert len(raw) < 100_000

    err = error(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING="gzip"), 413)

    assert "decompressed" in err["message"]
    assert not Event.objects.exists()


def test_a_gzip_bomb_is_413(tracker):
    # 50 MB of zeros compress to ~50 KB; the server inflates at most the limit plus one byte.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    raw = b"".join(compressor.compress(zeros) for _ in range(50)) + compressor.flush()
    assert len(raw) < 100_000

    err = error(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING="gzip"), 413)

    assert err["code"] == "payload_too_large"
    assert not Event.objects.exists()


def test_a_gzip_bomb_of_json_is_413(tracker):
    inner = b'{"event_name": "x", "distinct_id": "u", "properties": {"p": "' + b"a" * (
        60 * 1024 * 1024
    )
    raw = gzip.compress(inner + b'"}}', compresslevel=9)

    error(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING="gzip"), 413)

    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        gzip.compress(orjson.dumps(EVENT))[:-12],  # truncated
        gzip.compress(orjson.dumps(EVENT))[:15],
        orjson.dumps(EVENT),  # not compressed at all
        b"\x1f\x8b\x08\x00garbage-garbage-garbage",
    ],
)
def test_truncated_or_invalid_gzip_is_400(tracker, raw):
    err = error(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING="gzip"), 400)

    assert err["code"] == "invalid_encoding"
    assert "gzip" in err["message"]
    assert not Event.objects.exists()


def test_gzip_of_invalid_json_is_400(tracker):
    raw = gzip.compress(b'{"event_name": ')

    error(tracker.post(None, raw=raw, HTTP_CONTENT_ENCODING="gzip"), 400, "invalid_json")

    assert not Event.objects.exists()


def test_gzip_of_an_empty_body_is_400(tracker):
    error(tracker.post(None, raw=gzip.compress(b""), HTTP_CONTENT_ENCODING="gzip"), 400)

    assert not Event.objects.exists()


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br"])
def test_unsupported_content_encoding_is_415(tracker, encoding):
    err = error(tracker.post(EVENT, HTTP_CONTENT_ENCODING=encoding), 415, "unsupported_media_type")

    assert "Content-Encoding" in err["message"]
    assert not Event.objects.exists()


# --- content types ------------------------------------------------------------------------------


ANY_CONTENT_TYPE = [
    "application/x-www-form-urlencoded",  # some HTTP clients' default for a (gzipped) buffer
    "multipart/form-data; boundary=XyZ",
    "text/xml",
    "application/xml",
    "text/html",
    "application/octet-stream",
]


@pytest.mark.parametrize("content_type", ANY_CONTENT_TYPE)
def test_a_json_body_is_read_whatever_content_type_it_declares(tracker, content_type):
    ok(tracker.post(EVENT, content_type=content_type))
    ok(tracker.post(event("gzipped"), content_type=content_type, gzip_body=True))

    assert sorted(stored_names()) == ["gzipped", "signed_up"]


@pytest.mark.parametrize("content_type", [*ANY_CONTENT_TYPE, "application/json", "text/plain"])
def test_a_body_that_is_not_json_is_400_under_any_content_type(tracker, content_type):
    raw = b"event_name=x&distinct_id=u"

    err = error(tracker.post(None, raw=raw, content_type=content_type), 400, "invalid_json")

    assert "not valid JSON" in err["message"]
    assert not Event.objects.exists()


def test_form_encoded_fields_are_400_not_parsed(tracker):
    response = tracker.client.post(
        "/api/track",
        {"event_name": "x", "distinct_id": "u", "writeKey": tracker.write_key},
    )

    error(response, 400, "invalid_json")
    assert not Event.objects.exists()


def test_deflate_bodies_zlib_wrapped_or_raw_are_read(tracker):
    body = orjson.dumps({**EVENT, "message_id": "m-1"})
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_stream = raw_deflate.compress(body) + raw_deflate.flush()

    ok(tracker.post(None, raw=zlib.compress(body), HTTP_CONTENT_ENCODING="deflate"))
    ok(tracker.post(None, raw=raw_stream, HTTP_CONTENT_ENCODING="Deflate"))

    # Both carry the same message_id: stored once.
    assert stored_names() == ["signed_up"]


def test_a_deflate_header_on_a_body_that_is_not_deflate_is_400(tracker):
    err = error(tracker.post(EVENT, HTTP_CONTENT_ENCODING="deflate"), 400, "invalid_encoding")

    assert "deflate" in err["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # navigator.sendBeacon
        "text/plain;charset=UTF-8",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.cdp+json",
        "",
    ],
)
def test_json_and_beacon_content_types_are_accepted(tracker, content_type):
    ok(tracker.post(EVENT, content_type=content_type))

    assert stored_names() == ["signed_up"]


def test_send_beacon_with_the_key_in_the_body(tracker):
    payload = {"writeKey": tracker.write_key, "batch": [event("page_left")]}

    ok(tracker.post(payload, content_type="text/plain;charset=UTF-8", auth="none"))

    assert stored_names() == ["page_left"]


# --- no input produces a 500 --------------------------------------------------------------------

WEIRD_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "\udfff",
            "null",
            "undefined",
            "0",
            "[object Object]",
            "",
            " ",
            "2026-01-31T12:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+14:00",
            "yesterday",
            "page",
            "url",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1769860800, 1769860800000, -1, 2**63, 10**30]),
    WEIRD_TEXT,
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(WEIRD_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "event_name",
    "event",
    "distinct_id",
    "timestamp",
    "sent_at",
    "properties",
    "context",
    "category",
    "message_id",
    "session_id",
]
EVENTS = st.fixed_dictionaries(
    {
        "event_name": st.one_of(st.sampled_from(["a", "b"]), JSONISH),
        "distinct_id": st.one_of(st.sampled_from(["u1", "u2"]), JSONISH),
    },
    optional={name: JSONISH for name in FIELDS if name not in ("event_name", "distinct_id")},
)
BODIES = st.one_of(
    EVENTS,
    st.fixed_dictionaries(
        {"batch": st.one_of(st.lists(st.one_of(EVENTS, JSONISH), max_size=5), JSONISH)},
        optional={"sent_at": JSONISH, "context": JSONISH, "writeKey": JSONISH},
    ),
    JSONISH,
)


def _encode(body: Any, ascii_only: bool) -> bytes:
    text = json.dumps(body, allow_nan=True, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as invalid UTF-8


def _assert_consistent(response: Any, count_before: int) -> None:
    assert response.status_code < 500, response.content
    if response.status_code == 405:
        return
    body = response.json()
    stored = Event.objects.count() - count_before
    if response.status_code == 200:
        assert stored == body["accepted"], body
        assert body["accepted"] + body["duplicates"] >= 1
    else:
        assert stored == 0, body
        assert set(body["error"]) >= {"code", "message", "field"}
    for row in Event.objects.all():  # every row reads back, with nothing PostgreSQL can't hold
        assert "\x00" not in orjson.dumps(row.properties).decode()
        assert row.event_name
        assert row.distinct_id


@given(body=BODIES, ascii_only=st.booleans(), gzip_body=st.booleans())
def test_random_json_never_gets_a_500(tracker, body, ascii_only, gzip_body):
    count_before = Event.objects.count()
    raw = _encode(body, ascii_only)
    if gzip_body:
        raw = gzip.compress(raw)
    headers = {"HTTP_CONTENT_ENCODING": "gzip"} if gzip_body else {}

    response = tracker.post(None, raw=raw, **headers)

    _assert_consistent(response, count_before)


@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda b: b'{"event_name": "a", "distinct_id": "' + b, st.binary(max_size=50)),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "", "text/xml"]),
    encoding=st.sampled_from(["", "gzip", "deflate", "br"]),
    auth=st.sampled_from(["basic", "header", "none"]),
)
def test_random_bytes_never_get_a_500(tracker, raw, content_type, encoding, auth):
    count_before = Event.objects.count()
    headers = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}

    response = tracker.post(None, raw=raw, content_type=content_type, auth=auth, **headers)

    _assert_consistent(response, count_before)
    assert response.status_code != 200


@given(
    header=st.one_of(
        st.text(max_size=80).map(lambda t: "Basic " + t),
        st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
        st.text(max_size=40),
    ),
    key=st.text(max_size=70),
)
def test_random_credentials_never_get_a_500(tracker, header, key):
    raw = _encode({**EVENT, "writeKey": key}, ascii_only=True)
    headers: dict[str, str] = {}
    if header.isprintable() and all(ord(c) < 256 for c in header):
        headers["HTTP_AUTHORIZATION"] = header

    response = tracker.post(None, raw=raw, auth="none", **headers)

    assert response.status_code in (200, 401), response.content
    if response.status_code == 401:
        assert not Event.objects.exists()
