"""Simulated debtors: scripted WhatsApp conversations sent as signed webhooks, as Meta would.

Each debtor sends a message, waits for the assistant's first reply at the Graph stand-in
(or ``reply_timeout``), then sends the next — a closed loop, so ``N`` debtors keep at most
``N`` messages in flight. With ``ledger_url`` a reply counts only if the ledger says it
answers the message just sent: the real bot answers many turns in several bubbles, and
counting sends alone let a turn's second bubble release the next turn, so debtors wrote
ahead of the conversation (``ReplyLedger``).

Deliveries are retried like Meta retries them: a refused connection goes to the next
gateway, a 5xx is retried with a back-off. Optionally every webhook is delivered a second
time, later (so some duplicates arrive after newer messages).

What happened is measured afterwards from the ledger: each outbound row names the inbound
message it answers (``payload.in_reply_to``) and its idempotency key, which the WhatsApp
adapter sends as ``biz_opaque_callback_data``; the stand-in records when it accepted it.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET, SANDBOX_PHONE_NUMBER_ID
from bot.db.engine import session_factory
from bot.db.models import Message
from tests.graph_stub import GraphRequest, GraphStub

# A realistic conversation: greeting, balance (asks identity), birth date, why, how to pay,
# a payment code, a promise, thanks. Every message gets at least one reply.
SCRIPT = [
    "hola buenas tardes",
    "cuanto debo?",
    "15/03/1985",
    "por que me cobran intereses?",
    "como puedo pagar?",
    "quiero pagar en el oxxo, me das la referencia?",
    "500",
    "te pago 1000 el viernes",
    "muchas gracias",
]

# The same conversation as a debtor on WhatsApp has it: the options the assistant offers are
# tapped, not typed ("Consultar saldo", "Pagar ahora", "OXXO"). A script entry that is a
# payload of the domain's buttons is sent as a reply-button tap carrying that payload.
TAP_TITLES = {
    "/ask_balance": "Consultar saldo",
    "/request_payment_code": "Pagar ahora",
    '/inform{"payment_method": "oxxo"}': "OXXO",
}
TAPPING_SCRIPT = [
    "hola buenas tardes",
    "/ask_balance",
    "15/03/1985",
    "por que me cobran intereses?",
    "/request_payment_code",
    '/inform{"payment_method": "oxxo"}',
    "500",
    "te pago 1000 el viernes",
    "muchas gracias",
]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def webhook_body(wa_id: str, wamid: str, text: str, name: str = "Deudor Carga") -> bytes:
    if text in TAP_TITLES:  # a tapped reply button: its id is the payload we wrote
        message: dict[str, object] = {
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": text, "title": TAP_TITLES[text]},
            },
        }
    else:
        message = {"type": "text", "text": {"body": text}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550000000",
            "phone_number_id": SANDBOX_PHONE_NUMBER_ID,
        },
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                **message,
            }
        ],
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "load", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(envelope).encode()


@dataclass
class Sent:
    """One debtor message and how its delivery went."""

    wa_id: str
    wamid: str
    text: str
    turn: int
    posted_at: float = 0.0  # monotonic, first attempt
    ack_seconds: float | None = None  # POST → 200 of the accepted attempt
    attempts: int = 0
    accepted: bool = False


@dataclass
class LoadResult:
    sent: list[Sent]
    started: float
    finished: float
    delivery_errors: list[str] = field(default_factory=list)
    reply_timeouts: int = 0


class ReplyLedger:
    """Which debtor message an accepted send answers, read from the ledger as sends arrive.

    The stand-in sees an idempotency key (``biz_opaque_callback_data``); the ledger's
    outbound row with that key names the inbound row it answers (``payload.in_reply_to``),
    whose ``external_id`` is the wamid the driver posted. Rows are read incrementally by id,
    from the stand-in's threads, once per key not seen yet.
    """

    def __init__(self, db_url: str) -> None:
        self._sessions = session_factory(db_url)
        self._lock = threading.Lock()
        self._last_id = 0
        self._wamids: dict[int, str] = {}  # inbound row id -> wamid
        self._answers: dict[str, int] = {}  # idempotency key -> inbound row id

    def answered_wamid(self, request: GraphRequest) -> str | None:
        key = request.body.get("biz_opaque_callback_data")
        if not key:
            return None
        with self._lock:
            if key not in self._answers:
                self._read_new_rows()
            inbound = self._answers.get(str(key))
            return self._wamids.get(inbound) if inbound is not None else None

    def _read_new_rows(self) -> None:
        columns = (Message.id, Message.direction, Message.external_id, Message.payload)
        with self._sessions() as session:
            rows = session.execute(
                select(*columns).where(Message.id > self._last_id).order_by(Message.id)
            ).all()
        for row_id, direction, external_id, payload in rows:
            self._last_id = max(self._last_id, row_id)
            if direction == "in" and external_id:
                self._wamids[row_id] = external_id
            elif direction == "out" and payload and payload.get("idempotency_key"):
                answers = payload.get("in_reply_to")
                if answers is not None:
                    self._answers[str(payload["idempotency_key"])] = int(answers)


class LoadDriver:
    """Runs the simulated debtors against one or more gateways."""

    def __init__(
        self,
        gateway_urls: list[str],
        graph: GraphStub,
        *,
        reply_timeout: float = 60.0,
        duplicate_rate: float = 0.0,
        delivery_deadline: float = 120.0,
        seed: int = 7,
        run_id: str | None = None,
        replies_per_turn: int = 1,
        ledger_url: str | None = None,
    ) -> None:
        self.gateway_urls = gateway_urls
        # The real bot: a turn is answered by the first send the ledger ties to it.
        self._ledger = ReplyLedger(ledger_url) if ledger_url else None
        self._awaiting: dict[str, str] = {}  # wa_id -> wamid of the message in flight
        # A turn is answered once this many sends reached the debtor (the stand-in Rasa's
        # bubbles per turn); the real bot's vary, so it waits for the first.
        self.replies_per_turn = replies_per_turn
        self._replies: dict[str, int] = {}
        self.graph = graph
        self.reply_timeout = reply_timeout
        self.duplicate_rate = duplicate_rate
        self.delivery_deadline = delivery_deadline
        self.random = random.Random(seed)
        self.run_id = run_id or f"{int(time.time() * 1000):x}"
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- replies ----------------------------------------------------------------------
    def _accepted(self, request: GraphRequest) -> None:  # called in the stub's threads
        wa_id = str(request.body.get("to", ""))
        if wa_id not in self._events or self._loop is None:
            return
        if self._ledger is None:
            self._loop.call_soon_threadsafe(self._count_reply, wa_id)
            return
        wamid = self._ledger.answered_wamid(request)
        if wamid is not None:
            self._loop.call_soon_threadsafe(self._answered, wa_id, wamid)

    def _answered(self, wa_id: str, wamid: str) -> None:  # in the driver's loop
        if self._awaiting.get(wa_id) == wamid:
            self._events[wa_id].set()

    def _count_reply(self, wa_id: str) -> None:  # in the driver's loop
        self._replies[wa_id] = self._replies.get(wa_id, 0) + 1
        if self._replies[wa_id] >= self.replies_per_turn:
            self._events[wa_id].set()

    # -- deliveries -------------------------------------------------------------------
    async def deliver(self, client: httpx.AsyncClient, raw: bytes, sent: Sent | None) -> bool:
        """POST one webhook until a gateway accepts it (or the deadline passes)."""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
        }
        deadline = time.monotonic() + self.delivery_deadline
        index = self.random.randrange(len(self.gateway_urls))
        delay = 0.2
        while time.monotonic() < deadline:
            url = self.gateway_urls[index % len(self.gateway_urls)] + "/webhooks/whatsapp"
            index += 1
            started = time.monotonic()
            if sent is not None:
                sent.attempts += 1
                if not sent.posted_at:
                    sent.posted_at = started
            try:
                response = await client.post(url, content=raw, headers=headers)
            except httpx.TransportError:
                continue  # that gateway is gone: the next one (a load balancer would)
            if response.status_code == 200:
                if sent is not None:
                    sent.ack_seconds = time.monotonic() - started
                    sent.accepted = True
                return True
            if response.status_code < 500:
                raise AssertionError(f"webhook refused: {response.status_code} {response.text}")
            await asyncio.sleep(delay)  # 5xx: Meta retries later
            delay = min(delay * 2, 5.0)
        return False

    async def _later(self, client: httpx.AsyncClient, raw: bytes, wait: float) -> None:
        await asyncio.sleep(wait)
        await self.deliver(client, raw, None)

    async def _debtor(
        self, client: httpx.AsyncClient, wa_id: str, script: list[str], result: LoadResult
    ) -> None:
        event = self._events.setdefault(wa_id, asyncio.Event())
        for turn, text in enumerate(script, start=1):
            sent = Sent(wa_id, f"wamid.load.{self.run_id}.{wa_id}.{turn}", text, turn)
            result.sent.append(sent)
            raw = webhook_body(wa_id, sent.wamid, text)
            event.clear()
            self._replies[wa_id] = 0
            self._awaiting[wa_id] = sent.wamid
            if not await self.deliver(client, raw, sent):
                result.delivery_errors.append(f"{wa_id} turn {turn}: never accepted")
                continue
            if self.duplicate_rate and self.random.random() < self.duplicate_rate:
                task = asyncio.create_task(self._later(client, raw, self.random.uniform(0, 3)))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            try:
                await asyncio.wait_for(event.wait(), self.reply_timeout)
            except asyncio.TimeoutError:
                result.reply_timeouts += 1

    async def run_async(self, wa_ids: list[str], script: list[str]) -> LoadResult:
        self._loop = asyncio.get_running_loop()
        self.graph.on_accept = self._accepted
        limits = httpx.Limits(max_connections=len(wa_ids) * 2 + 10)
        result = LoadResult([], time.monotonic(), 0.0)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            await asyncio.gather(*(self._debtor(client, w, script, result) for w in wa_ids))
            if self._background:
                await asyncio.gather(*self._background)
        result.finished = time.monotonic()
        self.graph.on_accept = None
        return result

    def run(self, wa_ids: list[str], script: list[str]) -> LoadResult:
        return asyncio.run(self.run_async(wa_ids, script))


# -- what the ledger and the stand-in say afterwards ------------------------------------
@dataclass
class Outcome:
    """Every accepted message, its replies, and what reached the Graph stand-in."""

    inbound: dict[str, Message]  # wamid -> inbound row
    replies: dict[int, list[Message]]  # inbound id -> outbound rows answering it
    accepted_sends: dict[str, list[GraphRequest]]  # idempotency key -> accepted sends
    latencies: list[float]  # webhook POST → first reply accepted at the stand-in (s)
    acks: list[float]


def collect(db_url: str, graph: GraphStub, sent: list[Sent]) -> Outcome:
    with session_factory(db_url)() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
        session.expunge_all()
    inbound = {r.external_id: r for r in rows if r.direction == "in" and r.external_id}
    replies: dict[int, list[Message]] = defaultdict(list)
    for row in rows:
        answered = (row.payload or {}).get("in_reply_to")
        if row.direction == "out" and answered is not None:
            replies[int(answered)].append(row)
    accepted: dict[str, list[GraphRequest]] = defaultdict(list)
    for request in list(graph.sends):
        key = request.body.get("biz_opaque_callback_data")
        if key:
            accepted[str(key)].append(request)
    latencies = []
    for item in sent:
        row = inbound.get(item.wamid)
        if row is None or not item.posted_at:
            continue
        times = [
            request.at
            for reply in replies.get(row.id, [])
            for request in accepted.get(str((reply.payload or {}).get("idempotency_key")), [])
        ]
        if times:
            latencies.append(min(times) - item.posted_at)
    acks = [s.ack_seconds for s in sent if s.ack_seconds is not None]
    return Outcome(inbound, dict(replies), dict(accepted), latencies, acks)


def summary(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": round(percentile(values, 0.50) * 1000, 1),
        "p95": round(percentile(values, 0.95) * 1000, 1),
        "p99": round(percentile(values, 0.99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
    }
