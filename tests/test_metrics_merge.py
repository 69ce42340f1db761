"""One scrape of the gateway with its workers elsewhere (bot/gateway/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.gateway.metrics import merge_expositions


def _process(sent: int, depth: int, halted: int, acks: list[float]) -> bytes:
    registry = CollectorRegistry()
    out = Counter("acuerdo_messages_out_total", "out", ["status"], registry=registry)
    if sent:
        out.labels("sent").inc(sent)
    Gauge("acuerdo_queue_depth", "depth", ["queue"], registry=registry).labels("inbox").set(depth)
    Gauge("acuerdo_sending_halted", "halt", ["channel"], registry=registry).labels("rcs").set(
        halted
    )
    ack = Histogram("acuerdo_webhook_ack_seconds", "ack", buckets=(0.05, 1), registry=registry)
    for seconds in acks:
        ack.observe(seconds)
    Gauge("process_open_fds", "fds", registry=registry).set(7 if sent else 3)
    return generate_latest(registry)


def _values(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_counters_and_histograms_add_up_gauges_take_the_larger_and_process_figures_stay_own() -> (
    None
):
    gateway = _process(sent=0, depth=4, halted=0, acks=[0.01, 0.02, 0.5])
    workers = _process(sent=12, depth=4, halted=1, acks=[])
    merged = _values(merge_expositions(gateway, workers.decode()))
    assert merged[("acuerdo_messages_out_total", (("status", "sent"),))] == 12
    assert merged[("acuerdo_webhook_ack_seconds_count", ())] == 3
    assert merged[("acuerdo_webhook_ack_seconds_bucket", (("le", "0.05"),))] == 2
    assert merged[("acuerdo_queue_depth", (("queue", "inbox"),))] == 4  # measured by both
    assert merged[("acuerdo_sending_halted", (("channel", "rcs"),))] == 1  # the workers' halt
    assert merged[("process_open_fds", ())] == 3  # the gateway's own process


def test_the_merge_is_valid_exposition_with_one_family_each() -> None:
    merged = merge_expositions(
        _process(sent=1, depth=0, halted=0, acks=[0.1]),
        _process(sent=2, depth=1, halted=0, acks=[0.2]).decode(),
    ).decode()
    assert merged.count("# TYPE acuerdo_messages_out_total counter") == 1
    assert merged.count("# TYPE acuerdo_webhook_ack_seconds histogram") == 1
    families = [f.name for f in text_string_to_metric_families(merged)]
    assert len(families) == len(set(families))
