"""Benchmark: webhook → send latency of one conversation through the real gateway.

    python -m bench.bench_webhook_latency            # 200 messages
    python -m bench.bench_webhook_latency --smoke    # 20 messages

Starts the gateway (uvicorn, its own process) on a fresh SQLite file, with local stand-ins
for the Graph API and for Rasa (an instant echo, so the figures are the gateway's own
overhead: signature, durable store, claim, Rasa round trip, outbox, send). Posts signed
webhooks one after another for a single conversation, each after the previous reply
arrived, and prints the acknowledgement time (POST → 200) and the webhook → Graph send time
(p50, p95, max), also written to ``bench/results/webhook_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET
from bot.db.migrate import upgrade
from tests.graph_stub import GraphStub, wait_until
from tests.load import percentile, webhook_body
from tests.rasa_standin import RasaStandIn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "webhook_latency.json"
WA_ID = "5215512340001"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    messages: int,
    rasa_port: int | None = None,
    action_port: int | None = None,
    db_url: str | None = None,
    text: str = "mensaje",
) -> dict[str, object]:
    """Measure; with ``rasa_port`` the gateway talks to that real Rasa server instead."""
    workdir = Path(tempfile.mkdtemp(prefix="acuerdo-bench-"))
    if db_url is None:
        db_url = f"sqlite:///{workdir / 'acuerdo.db'}"
        upgrade(db_url)
    policy = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    policy["templates"].setdefault(
        "reanudar_conversacion", {"language": "es_MX", "body": "Hola", "buttons": ["Continuar"]}
    )
    (workdir / "policy.yml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    graph = GraphStub(keep_alive=True).start()
    rasa = RasaStandIn().start() if rasa_port is None else None
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": db_url,
            "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
            "WHATSAPP_API_BASE_URL": graph.url,
            "RASA_PORT": str(rasa.port if rasa else rasa_port),
            "ACTION_PORT": str(rasa.port if rasa else action_port),
            "ACUERDO_POLICY_FILE": str(workdir / "policy.yml"),
            "ACUERDO_VAR_DIR": str(workdir / "var"),
            "ACUERDO_LOG_LEVEL": "WARNING",
            # One scripted sender writes far faster than a person: not a flood to throttle.
            "ACUERDO_RATE_LIMIT_MESSAGES": "100000",
        }
    )
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bot.gateway.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],  # fmt: skip
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    acks: list[float] = []
    replies: list[float] = []
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, "the gateway")
        with httpx.Client(base_url=url, timeout=10) as client:
            for n in range(messages + 5):  # the first five warm up connections and caches
                raw = webhook_body(
                    WA_ID,
                    f"wamid.bench.{n}.{time.time_ns()}",
                    text if text != "mensaje" else f"mensaje {n}",
                    "Bench",
                )
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
                }
                expected = len(graph.sends) + 1
                started = time.monotonic()
                response = client.post("/webhooks/whatsapp", content=raw, headers=headers)
                acked = time.monotonic()
                assert response.status_code == 200, response.text
                wait_until(lambda expected=expected: len(graph.sends) >= expected, 30, "reply")
                if n >= 5:
                    acks.append(acked - started)
                    replies.append(graph.sends[expected - 1].at - started)
    finally:
        gateway.terminate()
        gateway.wait(15)
        graph.stop()
        if rasa:
            rasa.stop()

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1),
        }

    return {
        "messages": messages,
        "ack": summary(acks),
        "webhook_to_send": summary(replies),
        "database": "sqlite",
        "rasa": "instant echo stand-in" if rasa_port is None else f"real Rasa on :{rasa_port}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="20 messages (CI)")
    parser.add_argument("--rasa-port", type=int, help="a running Rasa server (else an echo)")
    parser.add_argument("--action-port", type=int, help="its action server")
    parser.add_argument("--database-url", help="the ledger the action server uses")
    parser.add_argument("--text", default="mensaje", help="what the debtor writes each turn")
    args = parser.parse_args()
    result = run(
        20 if args.smoke else args.messages,
        args.rasa_port,
        args.action_port,
        args.database_url,
        args.text,
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    ack, send = result["ack"], result["webhook_to_send"]
    print(f"{result['messages']} messages, one conversation")
    print(f"  webhook acknowledged (POST → 200): {ack}")
    print(f"  webhook → Graph send:              {send}")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
