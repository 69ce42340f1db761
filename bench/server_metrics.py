"""Figures the gateway itself reports on ``/metrics``, read by the benches.

The client-side ack time includes the load driver's own waits for the CPU (it shares the 2
cores); the gateway's ``acuerdo_webhook_ack_seconds`` histogram does not, so the benches
report both. Bucketed: a quantile is given as the bound of the bucket that holds it.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

ACK_HISTOGRAM = "acuerdo_webhook_ack_seconds"
STORE_HISTOGRAM = "acuerdo_webhook_store_seconds"


def histogram_buckets(base_urls: list[str], name: str) -> dict[float, float]:
    """The cumulative bucket counts of histogram ``name``, summed over the gateways."""
    buckets: dict[float, float] = {}
    for base_url in base_urls:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == f"{name}_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """Count, the bucket bounds (ms) holding p50/p95/p99, and the share under 50 ms."""
    window = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    if not window:
        return {}
    bounds = sorted(window)
    total = window[bounds[-1]]
    figures: dict[str, float] = {"count": total}
    if not total:
        return figures
    for label, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        upper = next(bound for bound in bounds if window[bound] >= share * total)
        figures[f"{label}_at_most_ms"] = upper * 1000
    figures["share_within_50ms"] = round(window.get(0.05, 0.0) / total, 4)
    return figures
