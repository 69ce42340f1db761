"""Prometheus metrics of the gateway (``GET /metrics``).

Defined once per process on the default registry; every app instance reports into them.
With the workers in their own process, the gateway's ``/metrics`` adds theirs
(:func:`merge_expositions`), so one scrape still sees the whole gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from bot.conversation.rate_limit import RATE_LIMITED

MESSAGES_IN = Counter(
    "acuerdo_messages_in_total", "Inbound messages stored, by channel and kind", ["channel", "kind"]
)
DUPLICATES_IN = Counter(
    "acuerdo_messages_duplicate_total", "Redelivered inbound messages ignored", ["channel"]
)
MESSAGES_OUT = Counter(
    "acuerdo_messages_out_total",
    "Outbound messages by channel, kind and outcome (sent, held, failed)",
    ["channel", "kind", "status"],
)
STATUSES = Counter(
    "acuerdo_delivery_status_total",
    "Delivery receipts by channel and status",
    ["channel", "status"],
)
THROTTLED_IN = Counter(
    "acuerdo_messages_rate_limited_total",
    "Inbound messages kept but not answered: their conversation was over its rate limit",
)
PROCESSING_SECONDS = Histogram(
    "acuerdo_processing_seconds",
    "Time to process one inbound message (Rasa round trip included), by outcome",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SEND_SECONDS = Histogram(
    "acuerdo_send_seconds",
    "Time of one successful send to the channel API",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
WEBHOOK_ACK_SECONDS = Histogram(
    "acuerdo_webhook_ack_seconds",
    "From a channel webhook's arrival at its handler to its answer (verify, parse, store)",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
WEBHOOK_STORE_SECONDS = Histogram(
    "acuerdo_webhook_store_seconds",
    "The durable store of one channel webhook (thread hand-off and transaction)",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
QUEUE_DEPTH = Gauge(
    "acuerdo_queue_depth", "Messages waiting, by queue (inbox, outbox, held)", ["queue"]
)
GRAPH_ERRORS = Counter(
    "acuerdo_channel_api_errors_total",
    "Errors from the channel API (the Graph API for WhatsApp), by code",
    ["channel", "code"],
)
SENDING_HALTED = Gauge(
    "acuerdo_sending_halted", "1 while sending is stopped after an account-level error", ["channel"]
)
WEBHOOK_REJECTED = Counter(
    "acuerdo_webhook_rejected_total",
    "Webhook calls refused, by endpoint and HTTP status",
    ["endpoint", "status"],
)
WORKERS_SCRAPED = Gauge(
    "acuerdo_workers_scraped",
    "1 when this scrape includes the workers' own process (ACUERDO_WORKERS=separate), else 0",
)


class PrometheusObserver:
    """The workers' observer, reporting into the metrics above."""

    def inbound(self, channel: str, kind: str) -> None:
        MESSAGES_IN.labels(channel, kind).inc()

    def outbound(self, channel: str, kind: str, status: str) -> None:
        MESSAGES_OUT.labels(channel, kind, status).inc()

    def processed(self, seconds: float, outcome: str) -> None:
        PROCESSING_SECONDS.labels(outcome).observe(seconds)
        if outcome == RATE_LIMITED:
            THROTTLED_IN.inc()

    def sent(self, seconds: float) -> None:
        SEND_SECONDS.observe(seconds)

    def send_error(self, channel: str, code: str) -> None:
        GRAPH_ERRORS.labels(channel, code).inc()

    def halted(self, channel: str, halted: bool) -> None:
        SENDING_HALTED.labels(channel).set(1 if halted else 0)


def render_metrics(depths: dict[str, int]) -> tuple[bytes, str]:
    """The exposition text, with the queue depths measured just now."""
    for queue, depth in depths.items():
        QUEUE_DEPTH.labels(queue).set(depth)
    return generate_latest(), CONTENT_TYPE_LATEST


OWN_PREFIX = "acuerdo_"


def merge_expositions(own: bytes, workers: str) -> bytes:
    """This process's exposition with the ``acuerdo_*`` families of the workers' process.

    Counters and histograms add up, gauges take the larger value (queue depths are measured
    by both, a sending halt is set by the workers), ``*_created`` the earlier time. The
    workers' process and runtime families (``process_*``, ``python_*``) are left out: they
    describe another process.
    """
    theirs = {
        family.name: family
        for family in text_string_to_metric_families(workers)
        if family.name.startswith(OWN_PREFIX)
    }
    merged: list[Metric] = []
    for family in text_string_to_metric_families(own.decode()):
        other = theirs.pop(family.name, None)
        merged.append(family if other is None else _combined(family, other))
    merged.extend(theirs.values())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged))  # type: ignore[arg-type]
    return generate_latest(registry)


def _combined(mine: Metric, theirs: Metric) -> Metric:
    def combine(a: float, b: float) -> float:
        if mine.name.endswith("_created"):
            return min(a, b)
        if mine.type == "gauge":
            return max(a, b)
        return a + b

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in [*mine.samples, *theirs.samples]:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        values[key] = combine(values[key], sample.value) if key in values else sample.value
    family = Metric(mine.name, mine.documentation, mine.type)
    for (name, labels), value in values.items():
        family.add_sample(name, dict(labels), value)
    return family


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
