"""Benchmark: one debtor, hundreds of turns, through the real gateway, Rasa and action server.

    python -m bench.bench_long_conversation                 # every shape, 600 turns each
    python -m bench.bench_long_conversation --shape lockout # one shape
    python -m bench.bench_long_conversation --smoke         # 60 turns

Starts the single deployment of ``tests/topology.py`` (SQLite ledger, one Rasa server with
the trained CI model and ``endpoints.yml``, the action server, one gateway) with the Graph
API stand-in, once per shape of conversation (``bench/conversation_shapes.py``): a verified
chat; a form that keeps re-asking; a lockout; a chat handed to an agent and back every ten
turns; a new session every ten turns. Each turn is a signed WhatsApp webhook sent after the
previous turn's replies were all sent.

Measured per turn: webhook POST → first Graph send, and the CPU all three processes spent
on it (``/proc``). Printed and written to ``bench/results/long_conversation.json``: turns
1-10 against the last 10 (goal: at most 1.5×, for latency and CPU), per-block figures, how
many events Rasa's tracker holds at the end, and checks that a flat turn did not cost the
conversation's memory: a verified debtor is never asked to verify again and every balance
question gets the balance (``chat``), a locked-out sender stays locked out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.conversation_shapes import ASKS_IDENTITY, SHAPES, VERIFY, Shape, ShapeContext
from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET
from bot.conversation.claims import queue_depths
from bot.db.engine import session_scope
from bot.domain.phones import whatsapp_id
from bot.engine.training import latest_model
from tests.graph_stub import GraphStub, describe, wait_until
from tests.load import percentile, webhook_body
from tests.topology import TOPOLOGY_TOKEN, Topology, load_debtors

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "long_conversation.json"

BALANCE_QUESTION = "cuánto debo?"
WARM_UP = ["hola", "cuánto debo?", "ok", "cómo puedo pagar", "hola", "gracias"]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 1),
    }


def settled(db_url: str) -> bool:
    """No inbound message waiting and nothing left to send (the whole turn is out).

    Read from the ledger by the bench itself: asking the gateway's ``/metrics`` put the
    polling's own CPU (and, with the workers in their own process, a second scrape) into
    the processes measured.
    """
    with session_scope(db_url) as session:
        depths = queue_depths(session)
    return depths["inbox"] == 0 and depths["outbox"] == 0


class Conversation:
    """Says one thing at a time as the debtor and waits for every reply."""

    def __init__(
        self,
        client: httpx.Client,
        graph: GraphStub,
        wa_id: str,
        db_url: str,
        label: str = "long",
    ) -> None:
        self.client = client
        self.db_url = db_url
        self.label = label
        self.graph = graph
        self.wa_id = wa_id
        self.count = 0

    def say(self, text: str) -> tuple[float, list[str]]:
        """Seconds from the webhook POST to the first Graph send, and every reply's text."""
        self.count += 1
        raw = webhook_body(
            self.wa_id, f"wamid.{self.label}.{self.count}.{time.time_ns()}", text, "Bench"
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
        }
        before = len(self.graph.sends)
        started = time.monotonic()
        response = self.client.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert response.status_code == 200, response.text
        wait_until(lambda: len(self.graph.sends) > before, 120, f"a reply to {text!r}")
        latency = self.graph.sends[before].at - started
        wait_until(lambda: settled(self.db_url), 120, "the turn's replies to go out")
        return latency, [describe(send.body) for send in self.graph.sends[before:]]


def tracker_events(rasa_url: str, sender: str) -> int:
    """How many events Rasa's tracker store holds for ``sender`` (all sessions)."""
    response = httpx.get(
        f"{rasa_url}/conversations/{sender}/tracker",
        params={"include_events": "ALL", "token": TOPOLOGY_TOKEN},
        timeout=60,
    )
    response.raise_for_status()
    return len(response.json().get("events") or [])


def tracker_store_setting() -> str:
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    store = endpoints.get("tracker_store") or {}
    return str(store.get("type") or "in-memory (Rasa's default)")


def _first_last(values: list[float]) -> dict[str, float]:
    first, last = statistics.fmean(values[:10]), statistics.fmean(values[-10:])
    return {"first_10": round(first, 1), "last_10": round(last, 1), "ratio": round(last / first, 2)}


def run(turns: int, model: Path, shape: Shape, *, verbose: bool = False) -> dict[str, Any]:
    debtor, warm_up = load_debtors(2)
    latencies: list[float] = []
    cpu_ms: list[float] = []  # all processes together, per turn
    cpu_ms_by_process: dict[str, list[float]] = {}  # the same, per process
    identity_prompts = 0
    balance_answers = balance_questions = 0
    lost_state = 0
    with GraphStub(keep_alive=True) as graph:
        topology = Topology(
            model=model,
            graph_url=graph.url,
            scaled=False,
            debtors=[debtor, warm_up],
            extra_env={
                "ACUERDO_LOG_LEVEL": "WARNING",
                # One person writing hundreds of messages in minutes is a flood to the
                # gateway's per-conversation limit; the benchmark measures the dialogue.
                # The window shrinks, not the count: a limit of a million messages made the
                # check read the conversation's whole history every turn, which real
                # settings (20) never do.
                "ACUERDO_RATE_LIMIT_SECONDS": "0.001",
            },
        )
        started = time.monotonic()
        with topology:
            startup = time.monotonic() - started
            gateway_url = topology.gateway_urls()[0]
            with httpx.Client(base_url=gateway_url, timeout=60) as client:
                # Another debtor first warms every process up (TensorFlow traces its graphs
                # on first use), so turn 1 of the measured one is not a cold start.
                warm_chat = Conversation(
                    client, graph, whatsapp_id(warm_up.phone), topology.db_url, "warm"
                )
                for text in WARM_UP:
                    warm_chat.say(text)
                chat = Conversation(client, graph, whatsapp_id(debtor.phone), topology.db_url)
                context = ShapeContext(
                    client, topology.rasa_urls()[0], debtor.phone, topology.db_url
                )
                prelude = [chat.say(text) for text in shape.prelude]
                last_words = " ".join(prelude[-1][1]) if prelude else ""
                if shape.prelude == VERIFY and "$" not in last_words:
                    raise SystemExit(f"verification did not work: {last_words}")
                if shape.reached and shape.reached not in last_words:
                    raise SystemExit(f"the {shape.name} shape was not reached: {last_words}")
                for turn in range(1, turns + 1):
                    text = shape.cycle[(turn - 1) % len(shape.cycle)]
                    cpu_before = topology.cpu_seconds()
                    latency, replies = chat.say(text)
                    cpu_after = topology.cpu_seconds()
                    for name, seconds in cpu_after.items():
                        spent = 1000 * (seconds - cpu_before.get(name, 0.0))
                        cpu_ms_by_process.setdefault(name, []).append(spent)
                    cpu_ms.append(1000 * (sum(cpu_after.values()) - sum(cpu_before.values())))
                    latencies.append(latency)
                    said = " ".join(replies)
                    identity_prompts += ASKS_IDENTITY in said
                    lost_state += bool(shape.never and shape.never in said)
                    if text == BALANCE_QUESTION:
                        balance_questions += 1
                        balance_answers += "$12,000.00" in said
                    if verbose:
                        print(f"{turn:4d} {latency * 1000:7.1f} ms  {text!r} → {said[:90]!r}")
                    if shape.between is not None:
                        shape.between(context, turn)
                    if turn % 100 == 0:
                        print(f"  … {shape.name}: {turn} turns", file=sys.stderr)
            events = tracker_events(topology.rasa_urls()[0], debtor.phone)
            memory = topology.peak_rss_mib()

    block = 100 if turns >= 200 else max(10, turns // 6)
    blocks = [
        {
            "turns": f"{start + 1}-{min(start + block, turns)}",
            **summary(latencies[start : start + block]),
            "cpu_ms_mean": round(statistics.fmean(cpu_ms[start : start + block]), 1),
            "cpu_ms_mean_by_process": {
                name: round(statistics.fmean(values[start : start + block]), 1)
                for name, values in cpu_ms_by_process.items()
            },
        }
        for start in range(0, turns, block)
    ]
    first, last = summary(latencies[:10]), summary(latencies[-10:])
    return {
        "shape": shape.name,
        "summary": shape.summary,
        "turns": turns,
        "first_10": first,
        "last_10": last,
        "ratio_last_first_p50": round(last["p50_ms"] / first["p50_ms"], 2),
        "ratio_last_first_mean": round(last["mean_ms"] / first["mean_ms"], 2),
        "cpu_ms_per_turn": _first_last(cpu_ms),
        "cpu_ms_per_turn_by_process": {
            name: _first_last(values) for name, values in cpu_ms_by_process.items()
        },
        "blocks": blocks,
        "all": summary(latencies),
        "rasa_tracker_events_at_end": events,
        "identity_asked": identity_prompts,
        "state_lost": lost_state,
        "balance_answered": f"{balance_answers}/{balance_questions}",
        "tracker_store": tracker_store_setting(),
        "model": model.name,
        "startup_seconds": round(startup, 1),
        "peak_rss_mib": memory,
        "measured": (
            "webhook POST → first Graph send; CPU of gateway, Rasa and actions from the POST "
            "until the turn's last reply went out; not measured: the prelude, the steps "
            "between turns"
        ),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def _print(result: dict[str, Any]) -> None:
    turns = result["turns"]
    print(f"\n{result['shape']}: {turns} turns, {result['summary']} ({result['tracker_store']})")
    by_process = result["cpu_ms_per_turn_by_process"]
    names = list(by_process)
    header = "".join(f"  {name[:9]:>9}" for name in names)
    print(f"  {'turns':>9}  {'p50 ms':>8}  {'p95 ms':>8}  {'mean ms':>8}  {'CPU ms':>7}{header}")
    cpu = result["cpu_ms_per_turn"]
    first = {name: by_process[name]["first_10"] for name in names}
    last = {name: by_process[name]["last_10"] for name in names}
    rows = [
        ("first 10", result["first_10"], cpu["first_10"], first),
        *((b["turns"], b, b["cpu_ms_mean"], b["cpu_ms_mean_by_process"]) for b in result["blocks"]),
        ("last 10", result["last_10"], cpu["last_10"], last),
    ]
    for label, row, cpu_mean, per_process in rows:
        print(
            f"  {label:>9}  {row['p50_ms']:8.1f}  {row['p95_ms']:8.1f}  {row['mean_ms']:8.1f}"
            f"  {cpu_mean:7.1f}" + "".join(f"  {per_process[n]:9.1f}" for n in names)
        )
    print(
        f"  last/first: latency p50 {result['ratio_last_first_p50']}×, "
        f"mean {result['ratio_last_first_mean']}×; CPU (all processes) {cpu['ratio']}×"
    )
    print(
        f"  Rasa tracker events at the end: {result['rasa_tracker_events_at_end']}; "
        f"identity asked {result['identity_asked']}×; state lost {result['state_lost']}×; "
        f"balance answered {result['balance_answered']}"
    )
    print(f"  peak RSS (MiB): {result['peak_rss_mib']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--smoke", action="store_true", help="60 turns")
    parser.add_argument(
        "--shape", choices=[*SHAPES, "all"], default="all", help="which conversation (all)"
    )
    parser.add_argument("--model", type=Path, help="a trained model (default: the CI model)")
    parser.add_argument("--verbose", action="store_true", help="print every turn")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    turns = 60 if args.smoke else args.turns
    if turns < 20:
        parser.error("--turns must be at least 20 (turns 1-10 are compared with the last 10)")
    config = os.environ.get("ACUERDO_TRAIN_CONFIG", "config_ci.yml")
    model = args.model or latest_model(ROOT, config)
    if model is None:
        raise SystemExit(f"no trained model for {config}: run `acuerdo train` (or make test) first")
    names = list(SHAPES) if args.shape == "all" else [args.shape]
    results = {}
    for name in names:
        results[name] = run(turns, model, SHAPES[name], verbose=args.verbose)
        _print(results[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"shapes": results}, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.out}")
    worst = max(
        max(r["ratio_last_first_p50"], r["cpu_ms_per_turn"]["ratio"]) for r in results.values()
    )
    print(f"worst last/first ratio: {worst}× (goal ≤ 1.5×)")


if __name__ == "__main__":
    main()
