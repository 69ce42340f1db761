"""Hypothesis against the webhook parsers: WhatsApp Cloud API, RBM (RCS), payment provider.

The strategies build bodies shaped like the real ones (Meta's envelope with its entries,
changes, messages and statuses; RBM's Pub/Sub push with its base64 ``message.data``; the
``local`` provider's five-field payment event) and then mutate them: any field may be
missing, of the wrong JSON type, a huge string, unicode the wire should never carry (lone
surrogates, NUL, right-to-left marks), nested garbage; the serialized body may be cut short,
prefixed with a BOM or be random bytes.

Each parser is driven two ways:

- directly: it returns a :class:`~bot.channels.base.Delivery` (or a ``PaymentEvent``) whose
  every field can be stored — UTF-8 text, strict JSON details, aware timestamps — or raises
  its documented refusal (:class:`~bot.channels.base.InvalidDelivery`,
  :class:`~bot.payments.WebhookRejected`); never any other exception;
- over real HTTP: the same bodies, correctly signed so the parser behind the signature is
  reached, posted to the gateway served by uvicorn (``tests/live_gateway.py``) with a real
  SQLite ledger holding payment codes that some generated events pay. The answer is 2xx or
  4xx, never 5xx, and agrees with what the parser said.

Each test is a few seeded runs of :data:`CHUNK` examples (the same cases on every machine);
every generated case is counted in :data:`CASES`, and the last test prints the tally, how
deep the cases got (:data:`DEPTH`), and checks the budget. The regression tests at the end
pin what the fuzzing found.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from bot.channels.base import Delivery, InboundMessage, InvalidDelivery, StatusUpdate
from bot.channels.rcs_parse import (
    SIGNATURE_HEADER as RBM_SIGNATURE_HEADER,
)
from bot.channels.rcs_parse import (
    handshake_secret,
    parse_rbm_delivery,
    push_data,
    sign_data,
    verify_rbm_signature,
)
from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.channels.whatsapp_parse import KNOWN_STATUSES, parse_whatsapp_delivery
from bot.config import (
    SANDBOX_APP_SECRET,
    SANDBOX_PAYMENTS_SECRET,
    SANDBOX_PHONE_NUMBER_ID,
    SANDBOX_RCS_AGENT_ID,
    SANDBOX_RCS_CLIENT_TOKEN,
)
from bot.conversation.tuning import Tuning
from bot.db.engine import session_factory
from bot.domain.debtors import upsert_account
from bot.gateway.intake import MAX_BODY_BYTES, BodyLimitMiddleware, body_limits
from bot.payments import PaymentEvent, WebhookRejected, get_provider
from bot.payments.local import (
    SIGNATURE_HEADER as PAYMENT_SIGNATURE_HEADER,
)
from bot.payments.local import (
    LocalPaymentProvider,
    parse_local_event,
    sign_local_webhook,
)
from bot.policy import load_policy
from tests.accounts import account_data
from tests.live_gateway import LiveGateway, live_gateway

CASES: Counter[str] = Counter()
DEPTH: Counter[str] = Counter()  # how far the cases got: parsed, stored, paid…
# Seeded runs of CHUNK examples each; with tests/test_fuzz_openapi.py over 10,000 cases.
CHUNK = 250
WHATSAPP_CHUNKS = 4  # Meta's envelopes are the costliest to generate
DIRECT_CHUNKS = 6  # the RBM and payment parsers
RANDOM_CHUNKS = 10  # random bytes and JSON, to every parser
HTTP_CHUNKS = 2  # per webhook
BUDGET = CHUNK * (WHATSAPP_CHUNKS + 2 * DIRECT_CHUNKS + RANDOM_CHUNKS + 3 * HTTP_CHUNKS)

FUZZ = settings(
    deadline=None,
    derandomize=False,  # each run is seeded (explore)
    database=None,
    print_blob=True,
    # No shrinking: with bodies this size it can take minutes; a failure shows the case as
    # generated, and print_blob gives the line that replays it.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

LIMITS = BodyLimitMiddleware(None, limits=body_limits(Tuning()), default=MAX_BODY_BYTES)  # type: ignore[arg-type]
MISSING: Any = object()  # a field left out of its object


# -- building blocks -----------------------------------------------------------------------
# Fixed nasty values cost nothing to draw; the generated ones add variety around them.
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "\u202eesrever",
    "💸🇲🇽",
    "\ud800",  # a lone surrogate: valid in JSON (as an escape), not in UTF-8
    "a\udc80b",
    "null",
    "NaN",
    "-1",
    "0",
    "١٢٣",
    "ñandú",
    "\r\n",
    "9" * 400,
    "a" * 20_000,
    "😀" * 5_000,
    "\x00" * 3_000,
    "\ud83d" * 2_000,
]
GARBAGE = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(2**70),
    1e308,
    -0.0,
    [],
    {},
    [[[[[]]]]],
    {"": {"": {"": None}}},
    list(range(1_000)),
    *NASTY_STRINGS,
]


def pick(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``values`` (by index, so the strategy's repr stays short in reports)."""
    return st.sampled_from(range(len(values))).map(values.__getitem__)


@st.composite
def _weighted(draw: st.DrawFn, options: tuple[tuple[int, st.SearchStrategy[Any]], ...]) -> Any:
    roll = draw(st.integers(0, sum(weight for weight, _ in options) - 1))
    for weight, strategy in options:
        if roll < weight:
            return draw(strategy)
        roll -= weight
    raise AssertionError("unreachable")


def weighted(options: tuple[tuple[int, st.SearchStrategy[Any]], ...]) -> st.SearchStrategy[Any]:
    """A value of one of the strategies, chosen in proportion to its weight."""
    # deferred: a short repr; the nested one would run to megabytes in a failure report.
    return st.deferred(lambda: _weighted(options))


_nasty_text = st.one_of(st.text(max_size=30), pick(NASTY_STRINGS))
nasty_text = st.deferred(lambda: _nasty_text)  # a short repr, as in weighted()
finite_floats = st.floats(allow_nan=False, allow_infinity=False)  # non-finite: loose_json
_json_values = st.recursive(
    st.one_of(pick(GARBAGE), st.integers(), finite_floats, nasty_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=8,
)
json_values = st.deferred(lambda: _json_values)
# Not JSON, though Python reads it: NaN, Infinity, numbers that overflow to infinity.
ODD_BODIES = [
    b'{"object": "whatsapp_business_account", "entry": [], "x": 1e999}',
    b'{"message": {"data": "e30="}, "n": -Infinity}',
    b'{"event_id": "e", "reference": "r", "amount": 1e999, "currency": "MXN", "paid_at": NaN}',
    b'{"clientToken": "\\ud800", "secret": "\\udfff"}',
    b"\xef\xbb\xbf{}",
    b"{}" * 1000,
    b"[" * 100_000,
    b"",
]
loose_json = st.recursive(
    st.one_of(st.none(), st.floats(), nasty_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=8,
)
garbage = weighted(((2, pick(GARBAGE)), (1, json_values)))


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten ``valid``; else a JSON value of another kind, or missing.

    Light enough that most bodies get past their envelope and reach the items; heavy enough
    that a body of fifty fields usually has a few broken ones.
    """
    return weighted(((18, valid), (1, garbage), (1, st.just(MISSING))))


def mostly(valid: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times as often as each of the ``odd`` alternatives."""
    return weighted(((3, valid), *((1, other) for other in odd)))


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with these fields (each may go missing) and now and then an unknown one."""

    def build(values: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        built = {k: v for k, v in values.items() if v is not MISSING}
        return {**extra, **built}

    extras = mostly(st.just({}), st.dictionaries(nasty_text, garbage, max_size=2))
    return st.builds(build, st.fixed_dictionaries(fields), extras)


def _serialize(value: Any, ensure_ascii: bool, mutation: tuple[str, int]) -> bytes:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8
    kind, n = mutation
    if kind == "cut":
        return raw[: n % (len(raw) + 1)]
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    if kind == "tail":
        return raw + b"}" * (n % 3 + 1)
    return raw


mutations = weighted(
    (
        (7, st.just(("none", 0))),
        (1, st.tuples(st.sampled_from(["cut", "bom", "tail"]), st.integers(0, 10**6))),
    )
)


def bodies(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.builds(_serialize, values, st.sampled_from([True, True, True, False]), mutations)


# -- WhatsApp Cloud API ----------------------------------------------------------------------
WA_IDS = ["5215512340001", "525512340002", "5213312345678", "14155552671", "447700900123"]
wa_id = mostly(st.sampled_from(WA_IDS), st.from_regex(r"\+?\d{1,16}", fullmatch=True), nasty_text)
wamid = mostly(st.from_regex(r"wamid\.[A-Za-z0-9=_]{8,40}", fullmatch=True), nasty_text)
unix_time = mostly(
    st.integers(0, 2**34).map(str),
    st.integers(-(2**70), 2**70),
    finite_floats,
    nasty_text,
)
_media = obj(
    id=field(st.text(min_size=1, max_size=20)),
    mime_type=field(st.sampled_from(["image/jpeg", "application/pdf", "audio/ogg"])),
    caption=field(nasty_text),
    filename=field(nasty_text),
    sha256=field(st.text(max_size=64)),
    voice=field(st.booleans()),
    animated=field(st.booleans()),
)
_reply = obj(id=field(nasty_text), title=field(nasty_text))
_contents: dict[str, st.SearchStrategy[Any]] = {
    "text": obj(body=field(nasty_text)),
    "interactive": obj(
        type=field(st.sampled_from(["button_reply", "list_reply", "nfm_reply"])),
        button_reply=field(_reply),
        list_reply=field(_reply),
    ),
    "button": obj(payload=field(nasty_text), text=field(nasty_text)),
    "location": obj(
        latitude=field(finite_floats),
        longitude=field(finite_floats),
        name=field(nasty_text),
        address=field(nasty_text),
    ),
    "reaction": obj(message_id=field(wamid), emoji=field(nasty_text)),
    "contacts": st.lists(json_values, max_size=2),
    "system": obj(type=field(nasty_text), body=field(nasty_text)),
    "unsupported": obj(type=field(nasty_text)),
    **dict.fromkeys(["image", "document", "audio", "video", "sticker"], _media),
}
_kinds = [*_contents, "order", "request_welcome", "poll", "hologram"]


def _message(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        "from": field(wa_id),
        "id": field(wamid),
        "timestamp": field(unix_time),
        "type": field(st.just(kind)),
        kind: field(_contents.get(kind, json_values)),
        "context": field(obj(id=field(wamid), **{"from": field(wa_id)})),
    }
    if kind not in _contents or kind == "unsupported":  # only these carry "errors"
        fields["errors"] = field(st.lists(obj(code=field(st.integers()), title=nasty_text)))
    return obj(**fields)


# Built once per kind (a flatmap would rebuild the whole strategy for every message).
wa_message = st.one_of(*(_message(kind) for kind in _kinds))
wa_status = obj(
    id=field(wamid),
    status=field(st.sampled_from(sorted(KNOWN_STATUSES) + ["SENT", "bounced"])),
    timestamp=field(unix_time),
    recipient_id=field(wa_id),
    errors=field(
        st.lists(
            obj(
                code=field(st.one_of(st.integers(), st.sampled_from(["131047", "x"]))),
                title=field(nasty_text),
                message=field(nasty_text),
            ),
            max_size=2,
        )
    ),
)
wa_value = obj(
    messaging_product=field(st.just("whatsapp")),
    metadata=field(
        obj(
            display_phone_number=field(st.just("15550783881")),
            phone_number_id=field(st.sampled_from([SANDBOX_PHONE_NUMBER_ID, "999"])),
        )
    ),
    contacts=field(
        st.lists(obj(profile=field(obj(name=field(nasty_text))), wa_id=field(wa_id)), max_size=2)
    ),
    messages=field(st.lists(wa_message, max_size=2)),
    statuses=field(st.lists(wa_status, max_size=2)),
)
wa_envelope = obj(
    object=field(st.just("whatsapp_business_account")),
    entry=field(
        st.lists(
            obj(
                id=field(st.text(max_size=20)),
                changes=field(
                    st.lists(
                        obj(
                            field=field(st.sampled_from(["messages", "statuses", "account"])),
                            value=field(wa_value),
                        ),
                        max_size=2,
                    )
                ),
            ),
            max_size=2,
        )
    ),
)
# A sound envelope around one change whose messages and statuses carry the damage: most
# bodies reach the item parsers (where most of the reading is) and are stored.
wa_items = st.builds(
    lambda messages, statuses, contacts: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": SANDBOX_PHONE_NUMBER_ID},
                            "contacts": contacts,
                            "messages": messages,
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    },
    st.lists(wa_message, min_size=1, max_size=2),
    st.lists(wa_status, max_size=2),
    st.lists(obj(profile=obj(name=nasty_text), wa_id=wa_id), max_size=1),
)
whatsapp_bodies = weighted(((1, bodies(wa_envelope)), (2, bodies(wa_items))))


# -- RBM (RCS Business Messaging) ------------------------------------------------------------
PHONES = ["+525512340001", "+525512340002", "+14155552671", "+447700900123"]
e164 = mostly(st.sampled_from(PHONES), st.from_regex(r"\+\d{1,16}", fullmatch=True), nasty_text)
rfc3339 = st.one_of(
    st.sampled_from(["2026-11-23T18:00:01.123456789Z", "2026-11-23T18:00:01-06:00"]),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.from_regex(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,12})?(Z|[+-]\d{2}:\d{2})", fullmatch=True
    ),
    nasty_text,
)
rbm_id = mostly(st.from_regex(r"Ms[A-Za-z0-9]{8,30}", fullmatch=True), nasty_text)
rbm_content = st.one_of(
    st.fixed_dictionaries({"text": field(nasty_text)}),
    st.fixed_dictionaries(
        {
            "suggestionResponse": field(
                obj(
                    postbackData=field(nasty_text),
                    text=field(nasty_text),
                    type=field(st.sampled_from(["REPLY", "ACTION", "reply", "other"])),
                )
            )
        }
    ),
    st.fixed_dictionaries(
        {"location": field(obj(latitude=field(finite_floats), longitude=field(finite_floats)))}
    ),
    st.fixed_dictionaries(
        {
            "userFile": field(
                obj(
                    payload=field(
                        obj(
                            mimeType=field(st.sampled_from(["image/png", "video/mp4", "x/y"])),
                            fileUri=field(nasty_text),
                            fileName=field(nasty_text),
                            fileSizeBytes=field(st.integers()),
                        )
                    ),
                    thumbnail=field(json_values),
                )
            )
        }
    ),
    st.just({}),
)


def _rbm_data(head: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    return {**head, **{k: v for k, v in content.items() if v is not MISSING}}


rbm_user_message = st.builds(
    _rbm_data,
    obj(
        senderPhoneNumber=field(e164),
        messageId=field(rbm_id),
        sendTime=field(rfc3339),
        agentId=field(st.sampled_from([SANDBOX_RCS_AGENT_ID, "other@rbm.goog"])),
    ),
    rbm_content,
)
rbm_event = obj(
    senderPhoneNumber=field(e164),
    eventType=field(
        st.sampled_from(
            ["DELIVERED", "READ", "IS_TYPING", "UNSUBSCRIBE", "SUBSCRIBE", "read", "NEW_THING"]
        )
    ),
    eventId=field(rbm_id),
    messageId=field(rbm_id),
    sendTime=field(rfc3339),
    agentId=field(st.sampled_from([SANDBOX_RCS_AGENT_ID, "other@rbm.goog"])),
)
rbm_server_event = obj(
    eventType=field(st.sampled_from(["TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"])),
    messageId=field(rbm_id),
    sendTime=field(rfc3339),
    agentId=field(st.just(SANDBOX_RCS_AGENT_ID)),
)
rbm_data = st.one_of(rbm_user_message, rbm_event, rbm_server_event, json_values)


def _encode_data(data: Any, how: str) -> Any:
    """``message.data`` as RBM puts it (base64 of JSON), or broken in one way."""
    raw = json.dumps(data).encode("utf-8", "surrogatepass")
    if how == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if how == "not_base64":
        return raw.decode("utf-8", "replace")
    if how == "raw_value":
        return data
    return base64.b64encode(raw).decode()


def _push(data: Any, how: str, rest: dict[str, Any]) -> dict[str, Any]:
    message = rest.get("message", {})
    if isinstance(message, dict):  # else the wrong-typed 'message' stays as it is
        rest = {**rest, "message": {**message, "data": _encode_data(data, how)}}
    return rest


rbm_push = st.builds(
    _push,
    rbm_data,
    st.sampled_from(["standard", "standard", "standard", "urlsafe", "not_base64", "raw_value"]),
    obj(
        message=field(
            obj(
                messageId=field(st.text(max_size=20)),
                publishTime=field(rfc3339),
                attributes=field(json_values),
            )
        ),
        subscription=field(st.just("projects/rbm/subscriptions/agent")),
    ),
)
rbm_handshake = obj(clientToken=field(nasty_text), secret=field(nasty_text))
rcs_bodies = weighted(((3, bodies(rbm_push)), (1, bodies(rbm_handshake))))


# -- the local payment provider --------------------------------------------------------------
amounts = mostly(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2).map(str),
    st.integers(-(10**15), 10**15),
    finite_floats,
    st.sampled_from(["1e3", "1250.5", "01250.50", "+100", " 100 ", "1,250.00", "0.001"]),
    nasty_text,
)
iso_times = mostly(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2026-11-23T17:00:00Z",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-12:00",
            "2026-11-23T17:00:00z",
            "2026-02-30T10:00:00Z",
            "2026-11-23",
            "T",
        ]
    ),
    nasty_text,
)


def payment_events(references: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return obj(
        event_id=field(mostly(st.uuids().map(str), nasty_text)),
        reference=field(mostly(st.sampled_from(references), nasty_text)),
        amount=field(amounts),
        currency=field(mostly(st.just("MXN"), st.sampled_from(["USD", "mxn", ""]))),
        paid_at=field(iso_times),
    )


OFFLINE_REFERENCES = ["93000000000017", "00000001000000017", "646180000000000018"]


# -- what a parser may return ----------------------------------------------------------------
def storable(value: Any) -> None:
    """What the inbox keeps must be UTF-8 text and strict JSON (PostgreSQL refuses the rest)."""
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def check_delivery(delivery: Delivery, channel: str) -> None:
    assert isinstance(delivery, Delivery)
    for message in delivery.messages:
        assert isinstance(message, InboundMessage) and message.channel == channel
        assert isinstance(message.external_id, str) and 0 < len(message.external_id) <= 200
        assert message.sender.startswith("+") and message.sender[1:].isdigit()
        for text in (message.text, message.payload, message.media_id, message.profile_name):
            assert text is None or isinstance(text, str)
        assert message.text is None or len(message.text) <= 8192
        assert message.timestamp is None or message.timestamp.utcoffset() is not None
        storable(
            [message.external_id, message.text, message.payload, message.media_id]
            + [message.media_mime, message.profile_name, dict(message.details)]
        )
    for status in delivery.statuses:
        assert isinstance(status, StatusUpdate) and status.channel == channel
        assert isinstance(status.external_id, str)
        assert status.timestamp is None or status.timestamp.utcoffset() is not None
        storable([status.external_id, status.status, status.error_code, status.error_title])
    assert all(isinstance(reason, str) for reason in delivery.rejected)
    assert delivery.ignored >= 0


def whatsapp_outcome(raw: bytes) -> Delivery | None:
    """The parser's answer: a Delivery, or None when it refused the body as invalid."""
    try:
        delivery = parse_whatsapp_delivery(raw, SANDBOX_PHONE_NUMBER_ID)
    except InvalidDelivery as exc:
        assert exc.reason
        return None
    check_delivery(delivery, "whatsapp")
    DEPTH["whatsapp messages parsed"] += len(delivery.messages)
    DEPTH["whatsapp statuses parsed"] += len(delivery.statuses)
    return delivery


def rbm_outcome(raw: bytes) -> Delivery | None:
    try:
        delivery = parse_rbm_delivery(raw, SANDBOX_RCS_AGENT_ID)
    except InvalidDelivery as exc:
        assert exc.reason
        return None
    check_delivery(delivery, "rcs")
    DEPTH["rbm messages and statuses parsed"] += len(delivery.messages) + len(delivery.statuses)
    return delivery


def payment_outcome(raw: bytes) -> PaymentEvent | None:
    try:
        event = parse_local_event(raw)
    except WebhookRejected as exc:
        assert exc.reason
        return None
    assert isinstance(event.event_id, str) and 0 < len(event.event_id) <= 200
    assert isinstance(event.reference, str) and 0 < len(event.reference) <= 64
    assert isinstance(event.amount_cents, int) and event.amount_cents > 0
    assert event.currency == "MXN" and event.paid_at.utcoffset() is not None
    storable([event.event_id, event.reference, event.paid_at.isoformat()])
    DEPTH["payment events parsed"] += 1
    return event


# -- the parsers, directly -------------------------------------------------------------------
def explore(
    name: str, chunk: int, examples: int, strategy: st.SearchStrategy[Any], check: Any
) -> None:
    """Run ``check`` on ``examples`` values of ``strategy``, seeded by ``chunk``.

    Several seeded runs of a few hundred examples cover more ground per second than one long
    run (Hypothesis's bookkeeping grows with the run), and each is reproducible.
    """

    @seed(chunk)
    @settings(FUZZ, max_examples=examples)
    @given(value=strategy)
    def run(value: Any) -> None:
        CASES[name] += 1
        check(value)

    run()


def rbm_check(case: tuple[bytes, str | None]) -> None:
    raw, header = case
    handshake = handshake_secret(raw)
    if handshake is not None:
        storable(list(handshake))  # compared and echoed as UTF-8
    try:
        data = push_data(raw)
    except InvalidDelivery:
        data = None
    assert not verify_rbm_signature(raw, header, SANDBOX_RCS_CLIENT_TOKEN) or data is not None
    if data is not None:
        signature = sign_data(SANDBOX_RCS_CLIENT_TOKEN, data)
        assert verify_rbm_signature(raw, signature, SANDBOX_RCS_CLIENT_TOKEN)
    rbm_outcome(raw)


PROVIDER = LocalPaymentProvider(webhook_secret=SANDBOX_PAYMENTS_SECRET, link_secret="k")


def payment_check(case: tuple[bytes, str | None]) -> None:
    raw, header = case
    headers = {} if header is None else {PAYMENT_SIGNATURE_HEADER: header}
    assert isinstance(PROVIDER.verify_webhook(headers, raw), bool)
    signed = {PAYMENT_SIGNATURE_HEADER: sign_local_webhook(SANDBOX_PAYMENTS_SECRET, raw)}
    assert PROVIDER.verify_webhook(signed, raw)
    payment_outcome(raw)


def every_parser(raw: bytes) -> None:
    whatsapp_outcome(raw)
    rbm_outcome(raw)
    payment_outcome(raw)
    handshake_secret(raw)


headers = st.one_of(st.none(), nasty_text)


@pytest.mark.parametrize("chunk", range(WHATSAPP_CHUNKS))
def test_whatsapp_parser_returns_a_storable_delivery_or_refuses(chunk: int) -> None:
    explore("whatsapp parser", chunk, CHUNK, whatsapp_bodies, whatsapp_outcome)


@pytest.mark.parametrize("chunk", range(DIRECT_CHUNKS))
def test_rbm_parser_returns_a_storable_delivery_or_refuses(chunk: int) -> None:
    explore("rbm parser", chunk, CHUNK, st.tuples(rcs_bodies, headers), rbm_check)


@pytest.mark.parametrize("chunk", range(DIRECT_CHUNKS))
def test_payment_parser_returns_a_valid_event_or_refuses(chunk: int) -> None:
    strategy = st.tuples(bodies(payment_events(OFFLINE_REFERENCES)), headers)
    explore("payment parser", chunk, CHUNK, strategy, payment_check)


@pytest.mark.parametrize("chunk", range(RANDOM_CHUNKS))
def test_random_bytes_and_json_are_refused_by_every_parser_without_crashing(chunk: int) -> None:
    strategy = st.one_of(
        st.binary(max_size=300),
        pick(ODD_BODIES),
        bodies(json_values),
        bodies(loose_json),
    )
    explore("random bytes, every parser", chunk, CHUNK, strategy, every_parser)


# -- the same bodies, signed, over HTTP ------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with live_gateway(Path(tmp_path_factory.mktemp("fuzz-parsers"))) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def references(served: LiveGateway) -> list[str]:
    """References (and CLABEs) of payment codes in the served ledger, for events to pay."""
    settings_ = served.settings
    clock = settings_.clock()
    policy = load_policy(settings_.policy_file)
    provider = get_provider(settings_)
    found: list[str] = []
    with session_factory(settings_.database_url)() as session:
        for n in range(1, 3):
            account, _ = upsert_account(
                session,
                clock,
                account_data(f"FUZZ-{n}", f"Deudora Fuzz {n}", f"+52551234{n:04d}"),
            )
            for method in ("oxxo", "spei", "bank_ref"):
                code = provider.issue_code(
                    session, clock, policy, account, amount_cents=50_000, method=method
                )
                found.append(code.reference)
        session.commit()
    return found


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post(
    http: requests.Session, served: LiveGateway, path: str, raw: bytes, headers: dict[str, str]
) -> requests.Response | None:
    """POST ``raw``; None when it was over the body limit (and duly refused).

    The gateway answers 413 to a body over the limit without reading it, and hangs up: a
    client still writing may see the connection reset before it reads the answer.
    """
    oversized = len(raw) > LIMITS.limit_for(path)
    try:
        response = http.post(
            served.url + path,
            data=raw,
            headers={"Content-Type": "application/json", **headers},
            timeout=30,
        )
    except requests.ConnectionError:
        assert oversized
        DEPTH[f"{path} reset (oversized)"] += 1
        return None
    assert 200 <= response.status_code < 500, (response.status_code, response.text[:300])
    DEPTH[f"{path} {response.status_code}"] += 1
    if oversized:
        assert response.status_code == 413
        return None
    return response


@pytest.mark.parametrize("chunk", range(HTTP_CHUNKS))
def test_signed_whatsapp_bodies_get_2xx_or_4xx_as_the_parser_says(
    chunk: int, served: LiveGateway, http: requests.Session
) -> None:
    def check(raw: bytes) -> None:
        signature = {SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw)}
        response = post(http, served, "/webhooks/whatsapp", raw, signature)
        if response is None:
            return
        delivery = whatsapp_outcome(raw)
        if delivery is None:
            assert response.status_code == 400
        else:
            assert response.status_code == (422 if delivery.rejected else 200), response.text

    explore("whatsapp over HTTP", chunk, CHUNK, whatsapp_bodies, check)


def _rbm_signature(raw: bytes) -> dict[str, str]:
    try:
        data = push_data(raw)
    except InvalidDelivery:
        return {}
    return {RBM_SIGNATURE_HEADER: sign_data(SANDBOX_RCS_CLIENT_TOKEN, data)}


@pytest.mark.parametrize("chunk", range(HTTP_CHUNKS))
def test_signed_rbm_pushes_get_2xx_or_4xx_as_the_parser_says(
    chunk: int, served: LiveGateway, http: requests.Session
) -> None:
    def check(raw: bytes) -> None:
        response = post(http, served, "/webhooks/rcs", raw, _rbm_signature(raw))
        if response is None:
            return
        if handshake_secret(raw) is not None:
            assert response.status_code in (200, 403)
        elif not _rbm_signature(raw):
            assert response.status_code == 401
        elif (delivery := rbm_outcome(raw)) is None:
            assert response.status_code == 400
        else:
            assert response.status_code == (422 if delivery.rejected else 200), response.text

    explore("rbm over HTTP", chunk, CHUNK, rcs_bodies, check)


@pytest.mark.parametrize("chunk", range(HTTP_CHUNKS))
def test_signed_payment_events_get_2xx_or_4xx_as_the_parser_says(
    chunk: int, served: LiveGateway, http: requests.Session, references: list[str]
) -> None:
    def check(raw: bytes) -> None:
        signature = {PAYMENT_SIGNATURE_HEADER: sign_local_webhook(SANDBOX_PAYMENTS_SECRET, raw)}
        response = post(http, served, "/webhooks/payments/local", raw, signature)
        if response is None:
            return
        if payment_outcome(raw) is None:
            assert response.status_code == 400, response.text
        else:
            assert response.status_code in (200, 400, 422), response.text
        if response.status_code == 200:
            DEPTH[f"payment webhook: {response.json()['status']}"] += 1

    explore("payments over HTTP", chunk, CHUNK, bodies(payment_events(references)), check)


# -- what the fuzzing found, one regression test each ----------------------------------------
def signed_whatsapp(raw: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw)}


def test_json_nested_a_hundred_thousand_deep_is_refused_not_a_crash(
    served: LiveGateway, http: requests.Session
) -> None:
    """json raises RecursionError (not ValueError) on deep nesting: it was a 500, and on
    /webhooks/rcs before any signature check (the handshake is read first)."""
    deep = b"[" * 100_000
    with pytest.raises(InvalidDelivery):
        parse_whatsapp_delivery(deep, SANDBOX_PHONE_NUMBER_ID)
    with pytest.raises(InvalidDelivery):
        parse_rbm_delivery(deep, SANDBOX_RCS_AGENT_ID)
    assert handshake_secret(deep) is None
    assert not verify_rbm_signature(deep, "x", SANDBOX_RCS_CLIENT_TOKEN)
    with pytest.raises(WebhookRejected):
        parse_local_event(deep[:60_000])
    assert http.post(f"{served.url}/webhooks/rcs", data=deep).status_code == 401
    response = post(http, served, "/webhooks/whatsapp", deep, signed_whatsapp(deep))
    assert response is not None and response.status_code == 400
    deep = deep[:60_000]
    signature = {PAYMENT_SIGNATURE_HEADER: sign_local_webhook(SANDBOX_PAYMENTS_SECRET, deep)}
    response = post(http, served, "/webhooks/payments/local", deep, signature)
    assert response is not None and response.status_code == 400


def test_a_lone_surrogate_becomes_a_replacement_character_and_the_message_is_kept(
    served: LiveGateway, http: requests.Session
) -> None:
    """``"\\ud83d"`` alone (a cut emoji) is valid JSON but not text: storing it was a 500."""
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": SANDBOX_PHONE_NUMBER_ID},
                            "messages": [
                                {
                                    "from": "5215512340009",
                                    "id": "wamid.surrogate.\ud800",
                                    "timestamp": "1795000000",
                                    "type": "text",
                                    "text": {"body": "ya pagué \ud83d"},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogates travel as \u escapes
    delivery = parse_whatsapp_delivery(raw, SANDBOX_PHONE_NUMBER_ID)
    assert [m.text for m in delivery.messages] == ["ya pagué \ufffd"]
    response = post(http, served, "/webhooks/whatsapp", raw, signed_whatsapp(raw))
    assert response is not None and response.json()["stored"] == 1

    data = json.dumps(
        {
            "senderPhoneNumber": "+525512340009",
            "messageId": "MsSurrogate\udc80",
            "text": "hola \ud800",
            "agentId": SANDBOX_RCS_AGENT_ID,
        }
    ).encode()
    raw = json.dumps({"message": {"data": base64.b64encode(data).decode()}}).encode()
    assert parse_rbm_delivery(raw, SANDBOX_RCS_AGENT_ID).messages[0].text == "hola \ufffd"
    response = post(http, served, "/webhooks/rcs", raw, _rbm_signature(raw))
    assert response is not None and response.json()["stored"] == 1


def test_an_rbm_handshake_with_a_lone_surrogate_is_refused_not_a_crash(
    served: LiveGateway, http: requests.Session
) -> None:
    raw = b'{"clientToken": "\\ud800", "secret": "\\udfff"}'
    assert handshake_secret(raw) == ("\ufffd", "\ufffd")
    assert http.post(f"{served.url}/webhooks/rcs", data=raw).status_code == 403


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_numbers_json_cannot_carry_are_refused(number: bytes) -> None:
    """Python reads them; PostgreSQL's JSON refuses them, so the inbox write would fail."""
    location = b'{"latitude": ' + number + b', "longitude": 1}'
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [
                                    {
                                        "from": "5215512340009",
                                        "id": "wamid.nan",
                                        "type": "location",
                                        "location": "LOCATION",
                                    }
                                ]
                            },
                        }
                    ]
                }
            ],
        }
    ).encode()
    raw = raw.replace(b'"LOCATION"', location)
    with pytest.raises(InvalidDelivery):
        parse_whatsapp_delivery(raw, SANDBOX_PHONE_NUMBER_ID)
    data = b'{"senderPhoneNumber": "+525512340009", "messageId": "MsNan", "location": '
    pushed = json.dumps({"message": {"data": base64.b64encode(data + location + b"}").decode()}})
    with pytest.raises(InvalidDelivery):
        parse_rbm_delivery(pushed.encode(), SANDBOX_RCS_AGENT_ID)


def test_a_payment_event_id_or_reference_must_be_unicode_text(
    served: LiveGateway, http: requests.Session, references: list[str]
) -> None:
    """A lone surrogate in the event id of a known code's payment reached the ledger: 500."""
    for event_id, reference in (
        ("evt-\ud800", references[0]),
        ("evt-ok", references[0] + "\udc80"),
    ):
        raw = json.dumps(
            {
                "event_id": event_id,
                "reference": reference,
                "amount": "500.00",
                "currency": "MXN",
                "paid_at": "2026-11-23T17:00:00Z",
            }
        ).encode()
        with pytest.raises(WebhookRejected):
            parse_local_event(raw)
        signature = {PAYMENT_SIGNATURE_HEADER: sign_local_webhook(SANDBOX_PAYMENTS_SECRET, raw)}
        response = post(http, served, "/webhooks/payments/local", raw, signature)
        assert response is not None and response.status_code == 400


def test_titles_and_captions_are_clipped_like_typed_text() -> None:
    long = "a" * 20_000
    messages = [
        {"type": "button", "button": {"text": long, "payload": "p"}},
        {
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "x", "title": long}},
        },
        {"type": "image", "image": {"id": "media-1", "caption": long}},
    ]
    value = {
        "metadata": {"phone_number_id": SANDBOX_PHONE_NUMBER_ID},
        "messages": [
            {"from": "5215512340009", "id": f"wamid.long.{n}", **m} for n, m in enumerate(messages)
        ],
    }
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()
    delivery = parse_whatsapp_delivery(raw, SANDBOX_PHONE_NUMBER_ID)
    assert [len(m.text or "") for m in delivery.messages] == [8192, 8192, 8192]
    data = json.dumps(
        {
            "senderPhoneNumber": "+525512340009",
            "messageId": "MsLong",
            "suggestionResponse": {"postbackData": "p", "text": long},
        }
    ).encode()
    raw = json.dumps({"message": {"data": base64.b64encode(data).decode()}}).encode()
    assert len(parse_rbm_delivery(raw, None).messages[0].text or "") == 8192


@pytest.mark.parametrize("raw", [b"[1]", b'"read"', b"[" * 50_000])
def test_the_sandbox_graph_sink_refuses_json_that_is_not_an_object(
    served: LiveGateway, http: requests.Session, raw: bytes
) -> None:
    response = http.post(
        f"{served.url}/sandbox/graph/{served.settings.whatsapp_phone_number_id}/messages",
        data=raw,
        headers={"Authorization": f"Bearer {served.settings.whatsapp_access_token}"},
    )
    assert response.status_code == 400


def test_generated_cases_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """The tally of this file (run last); the budget holds when the whole file ran."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfuzz parsers: {total} generated cases {dict(CASES)}")
        print(f"how far they got: {dict(sorted(DEPTH.items()))}")
    if len(CASES) == 7:
        assert total >= BUDGET
