"""Benchmark: the gateway's own CPU per message, with Rasa and Meta at the network edge.

    python -m bench.bench_gateway                  # 50 debtors x 18 turns
    python -m bench.bench_gateway --debtors 10     # the light row
    python -m bench.bench_gateway --profile        # and where the gateway's CPU goes (py-spy)
    python -m bench.bench_gateway --source ../old  # another checkout's gateway (before/after)
    python -m bench.bench_gateway --env ACUERDO_WORKER_THREADS=6   # a tuning knob's A/B

The real gateway process (uvicorn, SQLite in WAL) against a local Rasa stand-in that answers
at once what the real bot answers on a typical turn (a text, then a question with two
buttons), and the Graph stand-in. N simulated debtors send signed webhooks in a closed loop,
each message after the previous reply arrived, so the figures are the gateway's alone: the
webhook's verification and durable store (the ack), the pipeline (claim, load, Rasa round
trip, complete with the replies queued), the read receipt, the outbox (claim, send, record).

Prints CPU ms per inbound message (from ``/proc``), throughput, ack and webhook->send
percentiles, and writes ``bench/results/gateway.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.profiling import Profilers
from bench.server_metrics import (
    ACK_HISTOGRAM,
    STORE_HISTOGRAM,
    bucket_quantiles,
    histogram_buckets,
)
from bot.clock import Clock
from bot.db.engine import session_scope
from bot.db.migrate import upgrade
from bot.domain.debtors import upsert_account
from bot.domain.phones import whatsapp_id
from tests.graph_stub import GraphStub
from tests.load import SCRIPT, LoadDriver, collect, summary
from tests.rasa_standin import RasaStandIn
from tests.topology import REPO_ROOT, Service, free_port, load_debtors

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"


def typical_turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Two bubbles, the second with reply buttons: the bot's most common answer."""
    sender = body.get("sender")
    return [
        {"recipient_id": sender, "text": "Soy el asistente automático de Acuerdo."},
        {
            "recipient_id": sender,
            "text": "¿Qué te gustaría hacer?",
            "buttons": [
                {"title": "Consultar saldo", "payload": "/ask_balance"},
                {"title": "Pagar ahora", "payload": "/pay_now"},
            ],
        },
    ]


def _gateway(
    workdir: Path,
    graph: GraphStub,
    rasa: RasaStandIn,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Service:
    db_url = f"sqlite:///{workdir / 'acuerdo.db'}"
    upgrade(db_url)
    clock = Clock.from_setting(None, "America/Mexico_City")
    with session_scope(db_url) as session:
        for data in load_debtors(60, prefix="+52554"):
            upsert_account(session, clock, data)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": db_url,
            "ACUERDO_SANDBOX": "1",
            "ACUERDO_VAR_DIR": str(workdir / "var"),
            "ACUERDO_LOG_LEVEL": "WARNING",
            "WHATSAPP_API_BASE_URL": graph.url,
            "RASA_PORT": str(rasa.port),
            "ACTION_PORT": str(rasa.port),
            "ACTION_SERVER_URL": f"http://127.0.0.1:{rasa.port}",
        }
    )
    env.update(extra_env or {})
    if source is not None:  # another checkout's gateway (a before/after in one session)
        env["PYTHONPATH"] = str(source)
    command = [
        str(REPO_ROOT / ".venv/bin/python"),
        *("-m", "uvicorn", "bot.gateway.app:app_from_env", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
    ]
    service = Service(
        "gateway",
        command,
        env,
        workdir / "gateway.log",
        f"http://127.0.0.1:{port}/healthz",
        cwd=source or REPO_ROOT,
    )
    service.start().wait_ready(60)
    return service


def run(
    debtors: int,
    turns: int,
    profile: bool = False,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="acuerdo-bench-gateway-"))
    graph = GraphStub(keep_alive=True).start()
    rasa = RasaStandIn(typical_turn, keep_alive=True).start()
    gateway = _gateway(workdir, graph, rasa, source, extra_env)
    script = (SCRIPT * (turns // len(SCRIPT) + 1))[:turns]
    *accounts, warm_up = load_debtors(debtors + 1, prefix="+52554")
    try:
        url = gateway.ready_url.rsplit("/", 1)[0] if gateway.ready_url else ""
        driver = LoadDriver([url], graph, reply_timeout=60, replies_per_turn=2)
        driver.run([whatsapp_id(warm_up.phone)], script)
        cpu_before = gateway.cpu_seconds()
        acks_before = histogram_buckets([url], ACK_HISTOGRAM)
        stores_before = histogram_buckets([url], STORE_HISTOGRAM)
        profilers = (
            Profilers([gateway], workdir / "profile", native=(), blocking=True) if profile else None
        )
        result = driver.run([whatsapp_id(a.phone) for a in accounts], script)
        db_url = f"sqlite:///{workdir / 'acuerdo.db'}"
        outcome = collect(db_url, graph, result.sent)
        cpu = gateway.cpu_seconds() - cpu_before
        server_ack = bucket_quantiles(acks_before, histogram_buckets([url], ACK_HISTOGRAM))
        server_store = bucket_quantiles(stores_before, histogram_buckets([url], STORE_HISTOGRAM))
        hot = profilers.stop() if profilers is not None else {}
        peak = gateway.sample_memory()
    finally:
        gateway.stop()
        graph.stop()
        rasa.stop()
    elapsed = result.finished - result.started
    return {
        "debtors": debtors,
        "turns": turns,
        "messages": len(result.sent),
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(result.sent) / elapsed, 1),
        "cpu_ms_per_message": round(1000 * cpu / max(len(result.sent), 1), 2),
        "ack_ms": summary(outcome.acks),
        "webhook_to_send_ms": summary(outcome.latencies),
        "server_ack": server_ack,
        "server_store": server_store,
        "peak_rss_mib": round(peak / 1024, 1),
        "sends_per_message": round(len(graph.sends) / max(len(result.sent) + turns, 1), 2),
        "errors": len(result.delivery_errors) + result.reply_timeouts,
        "profile": hot,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2 * len(SCRIPT))
    parser.add_argument("--profile", action="store_true", help="sample the gateway with py-spy")
    parser.add_argument(
        "--source", type=Path, help="run the gateway from this checkout (e.g. a git worktree)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the gateway (e.g. ACUERDO_WORKER_THREADS=4); repeatable",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    report = run(args.debtors, args.turns, args.profile, args.source, extra_env)
    report["env"] = extra_env
    print(
        f"gateway alone, {args.debtors} debtors x {args.turns} turns ({os.cpu_count()} cores): "
        f"{report['messages_per_second']} msg/s, "
        f"CPU {report['cpu_ms_per_message']} ms per message, RSS {report['peak_rss_mib']} MiB"
    )
    for name in ("ack_ms", "webhook_to_send_ms"):
        figures = report[name]
        print(f"  {name}: p50 {figures['p50']}  p95 {figures['p95']}  p99 {figures['p99']}")
    for name in ("server_ack", "server_store"):
        print(f"  {name} (gateway's /metrics, bucket bounds): {report[name]}")
    for frame, share in report["profile"].get("gateway", []):
        print(f"    {share:5.1f}  {frame}")
    report["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report["load_average"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
