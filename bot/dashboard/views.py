"""The dashboard's presentation: Spanish labels, chart series, table rows and the CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.dashboard.metrics import Metrics, MetricsRow
from bot.domain.money import cents_to_pesos, format_money

LABELS_FILE = Path(__file__).with_name("labels.yml")
WEEKDAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")
CSV_COUNTS = (
    "sent",
    "delivered",
    "read",
    "replied",
    "verified",
    "promises_made",
    "promises_kept",
    "agreements",
    "handoffs",
    "contained",
    "opt_outs",
    "delayed",
    "suppressed",
)


@lru_cache(maxsize=1)
def labels() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def handoff_labels() -> dict[str, str]:
    try:
        from bot.console.texts import console_texts

        return dict(console_texts().section("reasons"))
    except (ImportError, KeyError, OSError):
        return {}


def step_label(step: str) -> str:
    known: dict[str, str] = labels()["steps"]
    if step in known:
        return known[step]
    if step.startswith("due"):
        return f"D{step[3:].replace('-', '−')}"
    return step


def segment_label(segment: str) -> str:
    return str(labels()["segments"].get(segment, segment))


def suppression_label(reason: str) -> str:
    return str(labels()["suppression_reasons"].get(reason, reason.replace("_", " ")))


def handoff_label(reason: str) -> str:
    return handoff_labels().get(reason, reason.replace("_", " "))


def day_label(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "—"


def kpis(total: MetricsRow) -> list[dict[str, str]]:
    """The tiles at the top: a label, a value and, where it helps, a note (``labels.yml``)."""
    values = {
        "sent": (f"{total.sent:,}", {}),
        "delivered": (f"{total.delivered:,}", {"share": percent(total.delivered, total.sent)}),
        "read": (f"{total.read:,}", {"share": percent(total.read, total.sent)}),
        "replied": (f"{total.replied:,}", {}),
        "verified": (f"{total.verified:,}", {}),
        "promises": (f"{total.promises_made:,}", {"kept": f"{total.promises_kept:,}"}),
        "recovered": (format_money(total.recovered_cents), {}),
        "agreements": (f"{total.agreements:,}", {}),
        "handoffs": (f"{total.handoffs:,}", {}),
        "containment": (percent(total.contained, total.replied), {}),
        "opt_outs": (f"{total.opt_outs:,}", {}),
        "held": (f"{total.delayed:,} / {total.suppressed:,}", {}),
    }
    tiles = []
    for key, (value, fields) in values.items():
        text = labels()["kpis"][key]
        tiles.append(
            {
                "label": str(text["label"]),
                "value": value,
                "note": str(text.get("note", "")).format(**fields),
            }
        )
    return tiles


def chart_data(metrics: Metrics) -> dict[str, Any]:
    """The series the page's charts draw (Chart.js datasets, plain JSON)."""
    days = metrics.by_day()
    steps = [r for r in metrics.by_step() if r.sent or r.promises_made or r.recovered_cents]
    total = metrics.total
    return {
        "days": [day_label(r.day) for r in days],
        # Lists, not mappings: the page's JSON has its keys sorted, the series keep their order.
        "messages": [
            {"label": "Enviados", "data": [r.sent for r in days]},
            {"label": "Entregados", "data": [r.delivered for r in days]},
            {"label": "Leídos", "data": [r.read for r in days]},
            {"label": "Respondieron", "data": [r.replied for r in days]},
        ],
        "recovered": [float(cents_to_pesos(r.recovered_cents)) for r in days],
        "containment": [
            round(100 * r.contained / r.replied, 1) if r.replied else None for r in days
        ],
        "steps": [step_label(r.step) for r in steps],
        "promises": [
            {"label": "Promesas", "data": [r.promises_made for r in steps]},
            {"label": "Cumplidas", "data": [r.promises_kept for r in steps]},
        ],
        "step_sent": [r.sent for r in steps],
        "handoffs": {
            "labels": [handoff_label(k) for k in metrics.handoff_reasons],
            "values": [total.handoffs_by_reason[k] for k in metrics.handoff_reasons],
        },
        "suppressed": {
            "labels": [suppression_label(k) for k in metrics.suppression_reasons],
            "values": [total.suppressed_by_reason[k] for k in metrics.suppression_reasons],
        },
    }


def table_rows(metrics: Metrics) -> list[dict[str, Any]]:
    """One row per day, step and segment, newest day first, formatted for reading."""
    rows = []
    for r in sorted(metrics.rows, key=lambda r: r.day, reverse=True):
        rows.append(
            {
                "day": day_label(r.day),
                "step": step_label(r.step),
                "segment": segment_label(r.segment),
                "sent": r.sent,
                "delivered": r.delivered,
                "read": r.read,
                "replied": r.replied,
                "verified": r.verified,
                "promises": f"{r.promises_made} / {r.promises_kept}",
                "recovered": format_money(r.recovered_cents) if r.recovered_cents else "—",
                "agreements": r.agreements,
                "handoffs": ", ".join(
                    f"{handoff_label(k)}: {v}" for k, v in sorted(r.handoffs_by_reason.items())
                )
                or "—",
                "containment": percent(r.contained, r.replied),
                "opt_outs": r.opt_outs,
                "delayed": r.delayed,
                "suppressed": ", ".join(
                    f"{suppression_label(k)}: {v}"
                    for k, v in sorted(r.suppressed_by_reason.items())
                )
                or "—",
            }
        )
    return rows


def metrics_csv(metrics: Metrics) -> str:
    """The rows as CSV (UTF-8, comma separated, machine-readable headers and values)."""
    handoff_reasons = metrics.handoff_reasons
    suppression_reasons = metrics.suppression_reasons
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "day",
            "step",
            "segment",
            *CSV_COUNTS,
            "recovered",
            "containment_pct",
            *(f"handoffs_{reason}" for reason in handoff_reasons),
            *(f"suppressed_{reason}" for reason in suppression_reasons),
        ]
    )
    for r in metrics.rows:
        writer.writerow(
            [
                r.day.isoformat(),
                r.step,
                r.segment,
                *(getattr(r, name) for name in CSV_COUNTS),
                f"{cents_to_pesos(r.recovered_cents):.2f}",
                f"{100 * r.contained / r.replied:.1f}" if r.replied else "",
                *(r.handoffs_by_reason[reason] for reason in handoff_reasons),
                *(r.suppressed_by_reason[reason] for reason in suppression_reasons),
            ]
        )
    return buffer.getvalue()
