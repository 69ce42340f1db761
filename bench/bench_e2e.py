"""Benchmark: N simulated debtors end to end, against bare Rasa driven the same way.

    python -m bench.bench_e2e                         # 50 debtors, single and scaled topology
    python -m bench.bench_e2e --topology scaled       # PostgreSQL + Redis, 2 gateways, 2 Rasa
    python -m bench.bench_e2e --smoke                 # 8 debtors, 5 turns, single (CI)
    python -m bench.bench_e2e --script typed          # every message typed, no taps

The debtors tap the options the assistant offers where a WhatsApp user would (3 of the 9
messages of ``tests/load.py``'s ``TAPPING_SCRIPT``: "Consultar saldo", "Pagar ahora",
"OXXO"); bare Rasa gets the tap's payload as its text, as a client of Rasa's REST channel
sends it. After the 50-debtor runs, the single topology runs again with 10 debtors, beside
bare Rasa driven by 10 senders: 50 in a closed loop measure queueing, 10 measure the product.

1. **Baseline**: the same model in a bare ``rasa run`` (no gateway, no action server), N
   senders each posting the scripted conversation to Rasa's REST channel, one message after
   the previous answer. A second row does the same with Rasa's default recipe trained on
   our domain and data (``config_default.yml``: pipeline and policies left to Rasa), what a
   team gets without our engineering; ``--no-default-recipe`` skips it.
2. **End to end**: the real processes (``tests/topology.py``), N debtors sending signed
   WhatsApp webhooks (``tests/load.py``), replies captured by the Graph stand-in. Latency is
   webhook POST → first reply accepted by the stand-in; the ack is POST → 200. A debtor
   writes again only after the ledger ties a reply to its last message (many turns are
   answered in several bubbles; before, a late bubble released the next message early).

Prints a table per run and writes ``bench/results/e2e.json``. Figures depend on the machine
and on what else runs on it; the JSON records the core count and load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.profiling import Profilers
from bench.server_metrics import ACK_HISTOGRAM, bucket_quantiles, histogram_buckets
from bot.domain.phones import whatsapp_id
from bot.engine.training import ensure_model, latest_model, rasa_env
from tests.graph_stub import GraphStub
from tests.load import SCRIPT, TAP_TITLES, TAPPING_SCRIPT, LoadDriver, Sent, collect, summary
from tests.topology import REPO_ROOT, Service, Topology, free_port, load_debtors

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
# Rasa's defaults on our domain and data: the second baseline row (issue 14).
DEFAULT_RECIPE_CONFIG = "config_default.yml"


# -- baseline: bare Rasa ------------------------------------------------------------------
async def _rest_conversations(url: str, senders: list[str], script: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=len(senders) + 5)

    async def one(client: httpx.AsyncClient, sender: str) -> None:
        for text in script:
            started = time.monotonic()
            try:
                response = await client.post(
                    f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}")
                continue
            latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await one(client, "warm-up")
        started = time.monotonic()
        await asyncio.gather(*(one(client, s) for s in senders))
        elapsed = time.monotonic() - started
    return {
        "messages": len(latencies),
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(latencies) / elapsed, 1),
        "turn_ms": summary(latencies),
        "errors": len(errors),
    }


def run_baseline(
    model: Path, senders: list[str], script: list[str], workdir: Path
) -> dict[str, Any]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    endpoints = workdir / "endpoints.none.yml"
    endpoints.write_text("# bare Rasa: no action server, in-memory tracker store\n")
    # Rasa's own REST channel (rasa run reads ./credentials.yml, our token-guarded one, unless told)
    credentials = workdir / "credentials.none.yml"
    credentials.write_text("rest:\n")
    service = Service(
        "rasa-bare",
        [
            str(REPO_ROOT / ".venv-rasa/bin/rasa"),
            "run",
            "--enable-api",
            "-m",
            str(model),
            "--port",
            str(port),
            "--interface",
            "127.0.0.1",
            "--endpoints",
            str(endpoints),
            "--credentials",
            str(credentials),
        ],  # fmt: skip
        rasa_env(REPO_ROOT),
        workdir / "rasa-bare.log",
        f"http://127.0.0.1:{port}/status",
    )
    started = time.monotonic()
    service.start()
    try:
        service.wait_ready(600)
        load_seconds = time.monotonic() - started
        cpu_before = service.cpu_seconds()
        driver_before = time.process_time()
        figures = asyncio.run(_rest_conversations(f"http://127.0.0.1:{port}", senders, script))
        figures["cpu_ms_per_message"] = {
            "rasa": _per_message(service.cpu_seconds() - cpu_before, figures["messages"])
        }
        figures["driver_cpu_ms_per_message"] = _per_message(
            time.process_time() - driver_before, figures["messages"]
        )
        service.sample_memory()
    finally:
        service.stop()
    figures["model_load_seconds"] = round(load_seconds, 1)
    figures["peak_rss_mib"] = round(service.peak_rss_kib / 1024, 1)
    return figures


# -- end to end -----------------------------------------------------------------------------
def _per_message(cpu_seconds: float, messages: int) -> float:
    return round(1000 * cpu_seconds / max(messages, 1), 1)


def run_e2e(
    model: Path,
    debtors: int,
    script: list[str],
    scaled: bool,
    workdir: Path,
    profile: bool = False,
    rasa_nice: int = 0,
    separate_workers: bool = True,
) -> dict[str, Any]:
    graph = GraphStub(keep_alive=True).start()
    # One debtor more than measured: it warms up every process with the whole script first,
    # as the baseline's warm-up sender does (TensorFlow traces its graphs on first use).
    *accounts, warm_up = load_debtors(debtors + 1, prefix="+52554")
    topology = Topology(
        model=model,
        graph_url=graph.url,
        scaled=scaled,
        debtors=[*accounts, warm_up],
        workdir=workdir,
        extra_env={"ACUERDO_LOG_LEVEL": "WARNING"},
        rasa_nice=rasa_nice,
        separate_workers=separate_workers,
    )
    started = time.monotonic()
    topology.start()
    startup = time.monotonic() - started
    try:
        wa_ids = [whatsapp_id(a.phone) for a in accounts]
        driver = LoadDriver(
            topology.gateway_urls(), graph, reply_timeout=60, ledger_url=topology.db_url
        )
        driver.run([whatsapp_id(warm_up.phone)], script)
        cpu_before = topology.cpu_seconds()
        acks_before = histogram_buckets(topology.gateway_urls(), ACK_HISTOGRAM)
        profilers = Profilers(topology.services(), workdir / "profile") if profile else None
        driver_before = time.process_time()  # this process: the debtors and the Graph stand-in
        result = driver.run(wa_ids, script)
        driver_cpu = time.process_time() - driver_before
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the last bubbles of the last turns
            outcome = collect(topology.db_url, graph, result.sent)
            if len(outcome.latencies) >= len(result.sent):
                break
            time.sleep(0.2)
        cpu_after = topology.cpu_seconds()
        acks_after = histogram_buckets(topology.gateway_urls(), ACK_HISTOGRAM)
        hot = profilers.stop() if profilers is not None else {}
        peaks = topology.peak_rss_mib()
    finally:
        topology.stop()
        graph.stop()
    answered = [s for s in result.sent if s.wamid in outcome.inbound]
    unanswered = len(result.sent) - len(outcome.latencies)
    elapsed = result.finished - result.started
    return {
        "topology": "scaled" if scaled else "single",
        "workers": "separate" if topology.workers is not None else "inline",
        "debtors": debtors,
        "processes": sorted(peaks),
        "startup_seconds": round(startup, 1),
        "messages": len(result.sent),
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(answered) / elapsed, 1),
        "webhook_to_send_ms": summary(outcome.latencies),
        "ack_ms": summary(outcome.acks),
        # Every debtor's first message arrives in one burst at the start; the rest as the
        # conversations go (Rasa saturated): the ack goal is about the rest.
        "ack_ms_first_turn": summary(_acks(result.sent, first=True)),
        "ack_ms_later_turns": summary(_acks(result.sent, first=False)),
        "ack_at_gateway": bucket_quantiles(acks_before, acks_after),
        "peak_rss_mib": peaks,
        "peak_rss_total_mib": round(sum(peaks.values()), 1),
        "cpu_ms_per_message": {
            name: _per_message(cpu_after[name] - cpu_before.get(name, 0.0), len(answered))
            for name in cpu_after
        },
        # Not the product's: the bench's own process shares the cores with it.
        "driver_cpu_ms_per_message": _per_message(driver_cpu, len(answered)),
        "profile": hot,
        "errors": {
            "delivery": len(result.delivery_errors),
            "reply_timeouts": result.reply_timeouts,
            "unanswered": unanswered,
        },
    }


def _acks(sent: list[Sent], *, first: bool) -> list[float]:
    return [s.ack_seconds for s in sent if s.ack_seconds is not None and (s.turn == 1) == first]


COLUMNS = ("run", "msg/s", "ratio", "p50", "p95", "p99", "ack p50", "ack p99", "RSS MiB", "errors")
WIDTHS = (28, 8, 7, 8, 8, 8, 9, 9, 9, 8)


def _row(values: tuple[object, ...]) -> str:
    first, *rest = values
    return f"{first!s:<{WIDTHS[0]}}" + "".join(
        f"{value!s:>{width}}" for value, width in zip(rest, WIDTHS[1:], strict=True)
    )


def _run_name(run: dict[str, Any]) -> str:
    name = f"gateway {run['topology']}"
    return f"{name}, {run['debtors']} debtors" if run.get("light") else name


def _print(
    baseline: dict[str, Any],
    runs: list[dict[str, Any]],
    debtors: int,
    default_recipe: dict[str, Any] | None = None,
) -> None:
    print(f"\nEnd to end with {debtors} simulated debtors ({os.cpu_count()} cores)")
    header = _row(COLUMNS)
    print(header)
    print("-" * len(header))
    t = baseline["turn_ms"]
    print(
        _row(
            (
                "bare Rasa REST",
                baseline["messages_per_second"],
                "1.00",
                t["p50"],
                t["p95"],
                t["p99"],
                "-",
                "-",
                baseline["peak_rss_mib"],
                baseline["errors"],
            )
        )  # fmt: skip
    )
    if default_recipe is not None:
        t = default_recipe["turn_ms"]
        ratio = default_recipe["messages_per_second"] / baseline["messages_per_second"]
        print(
            _row(
                (
                    "bare Rasa, default recipe",
                    default_recipe["messages_per_second"],
                    f"{ratio:.2f}",
                    t["p50"],
                    t["p95"],
                    t["p99"],
                    "-",
                    "-",
                    default_recipe["peak_rss_mib"],
                    default_recipe["errors"],
                )
            )  # fmt: skip
        )
    for run in runs:
        lat, ack = run["webhook_to_send_ms"], run["ack_ms"]
        print(
            _row(
                (
                    _run_name(run),
                    run["messages_per_second"],
                    f"{run['ratio']:.2f}",
                    lat["p50"],
                    lat["p95"],
                    lat["p99"],
                    ack["p50"],
                    ack["p99"],
                    run["peak_rss_total_mib"],
                    sum(run["errors"].values()),
                )
            )  # fmt: skip
        )
    for run in runs:
        acks = run["ack_at_gateway"]
        if acks.get("count"):
            print(
                f"  ack inside the gateway ({_run_name(run)}; its /metrics, bucket bounds): "
                f"p50 <= {acks['p50_at_most_ms']:.0f}, p95 <= {acks['p95_at_most_ms']:.0f}, "
                f"p99 <= {acks['p99_at_most_ms']:.0f} ms; "
                f"{100 * acks['share_within_50ms']:.1f}% within 50 ms"
            )
    for run in runs:
        first, later = run["ack_ms_first_turn"], run["ack_ms_later_turns"]
        print(
            f"  ack at the client ({_run_name(run)}): first turn's burst p50 {first['p50']}, "
            f"p99 {first['p99']} ms; later turns p50 {later['p50']}, p95 {later['p95']}, "
            f"p99 {later['p99']} ms"
        )
    for run in runs:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in run["peak_rss_mib"].items())
        print(f"  peak RSS ({_run_name(run)}): {parts} MiB")
    rasa_cpu = baseline["cpu_ms_per_message"]["rasa"]
    print(f"  CPU ms per message: bare Rasa {rasa_cpu:.1f}")
    if default_recipe is not None:
        default_cpu = default_recipe["cpu_ms_per_message"]["rasa"]
        print(
            f"  CPU ms per message: bare Rasa, Rasa's default recipe on our data {default_cpu:.1f}"
        )
    for run in runs:
        cpu = run["cpu_ms_per_message"]
        parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        print(f"  CPU ms per message ({_run_name(run)}): {parts}; total {sum(cpu.values()):.1f}")
        for name, frames in run["profile"].items():
            print(f"  py-spy, {name} ({run['topology']}): where its CPU samples are (self, %)")
            for frame, share in frames:
                print(f"    {share:5.1f}  {frame}")
    drivers = [f"bare Rasa {baseline['driver_cpu_ms_per_message']:.1f}"] + [
        f"{_run_name(run)} {run['driver_cpu_ms_per_message']:.1f}" for run in runs
    ]
    print(
        "  CPU ms per message of the bench's own process (debtors, Graph stand-in; "
        f"not the product's, on the same cores): {', '.join(drivers)}"
    )
    print("  latency in ms: webhook POST -> first reply at the Graph stand-in;")
    print("  bare Rasa: one REST turn (no gateway, no action server)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2 * len(SCRIPT))
    parser.add_argument("--topology", choices=("single", "scaled", "both"), default="both")
    parser.add_argument("--smoke", action="store_true", help="8 debtors, 5 turns, single")
    parser.add_argument(
        "--script", choices=("taps", "typed"), default="taps", help="tap the offered options"
    )
    parser.add_argument(
        "--light-debtors", type=int, default=10, help="the extra single run's debtors (0: none)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample every process with py-spy during the run"
    )
    parser.add_argument(
        "--rasa-nice", type=int, default=0, help="start Rasa with this nice value (0-19)"
    )
    parser.add_argument(
        "--no-default-recipe",
        dest="default_recipe",
        action="store_false",
        help="skip the row of Rasa's default recipe (config_default.yml) on our data",
    )
    parser.add_argument(
        "--inline-workers",
        dest="separate_workers",
        action="store_false",
        help="single topology: run the workers inside the gateway (ACUERDO_WORKERS=inline)",
    )
    parser.add_argument("--config", default=os.environ.get("ACUERDO_TRAIN_CONFIG", "config.yml"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.debtors, args.turns, args.topology = 8, 5, "single"
    model = latest_model(REPO_ROOT, args.config)
    if model is None:
        print(f"No trained model for {args.config}: run 'acuerdo train' first.", file=sys.stderr)
        return 1
    base = TAPPING_SCRIPT if args.script == "taps" else SCRIPT
    script = (base * (args.turns // len(base) + 1))[: args.turns]
    taps = sum(text in TAP_TITLES for text in script)
    senders = [whatsapp_id(a.phone) for a in load_debtors(args.debtors, prefix="+52554")]
    workdir = Path(tempfile.mkdtemp(prefix="acuerdo-bench-e2e-"))
    baseline = run_baseline(model, senders, script, workdir)
    default_recipe = None
    if args.default_recipe and not args.smoke:
        print("Rasa's default recipe (trained once, minutes, if its model is missing) ...")
        default_model = ensure_model(REPO_ROOT, DEFAULT_RECIPE_CONFIG)
        default_recipe = run_baseline(default_model, senders, script, workdir / "default")
        default_recipe["model"] = default_model.name
    runs = []
    for scaled in {"single": [False], "scaled": [True], "both": [False, True]}[args.topology]:
        run = run_e2e(
            model,
            args.debtors,
            script,
            scaled,
            workdir / ("scaled" if scaled else "single"),
            profile=args.profile,
            rasa_nice=args.rasa_nice,
            separate_workers=args.separate_workers,
        )
        run["ratio"] = round(run["messages_per_second"] / baseline["messages_per_second"], 2)
        runs.append(run)
    light_baseline = None
    if args.light_debtors and not args.smoke and args.topology != "scaled":
        # Bare Rasa driven by as few senders: what the model alone gives at that load.
        light_baseline = run_baseline(
            model, senders[: args.light_debtors], script, workdir / "light-bare"
        )
        light = run_e2e(
            model,
            args.light_debtors,
            script,
            False,
            workdir / "light",
            rasa_nice=args.rasa_nice,
            separate_workers=args.separate_workers,
        )
        light["light"] = True
        light["ratio"] = round(
            light["messages_per_second"] / light_baseline["messages_per_second"], 2
        )
        runs.append(light)
    _print(baseline, runs, args.debtors, default_recipe)
    if light_baseline is not None:
        t = light_baseline["turn_ms"]
        print(
            f"  bare Rasa REST with {args.light_debtors} senders (the light run's ratio is to it): "
            f"{light_baseline['messages_per_second']} msg/s, p50 {t['p50']}, p95 {t['p95']}, "
            f"p99 {t['p99']} ms, CPU {light_baseline['cpu_ms_per_message']['rasa']:.1f} ms"
        )
    print(f"  taps: {taps} of the {len(script)} messages of each debtor ({args.script} script)")
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "model": model.name,
        "debtors": args.debtors,
        "turns": args.turns,
        "script": args.script,
        "taps_per_debtor": taps,
        "baseline_bare_rasa": baseline,
        "baseline_default_recipe": default_recipe,
        "baseline_bare_rasa_light": light_baseline,
        "end_to_end": runs,
    }
    target = RESULTS.with_name("e2e-smoke.json") if args.smoke else RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {target.relative_to(REPO_ROOT)}")
    failed = [r for r in runs if r["errors"]["delivery"] or r["errors"]["unanswered"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
