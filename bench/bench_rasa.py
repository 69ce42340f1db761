"""Benchmark: the Rasa engine alone — NLU parse latency and throughput, model load, training.

    python -m bench.bench_rasa            # parses every held-out message; trains config.yml
    python -m bench.bench_rasa --smoke    # ~50 parses, no training

* Model load: starts ``rasa run --enable-api -m <model>`` (the trained CI model unless
  ``--model``) and times it until ``GET /status`` answers with the model loaded.
* Parse: ``POST /model/parse`` with the debtor messages of ``tests/nlu_holdout.yml`` (never
  seen in training), one at a time after a warm-up (p50/p95/p99), then from 4 clients at
  once (throughput). Peak RSS of the server (``VmHWM``) after all of it.
* Training (not with ``--smoke``): ``rasa train`` with ``config.yml``, the same command and
  environment as ``bot/engine/training.py``, into a temporary directory and with an empty
  training cache (a first ``acuerdo train``); wall time and peak RSS. ``models/`` and
  ``.rasa/cache`` are not touched.

Prints a table and writes ``bench/results/rasa.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.engine.training import latest_model, rasa_env, rasa_executable, train_command
from tests.topology import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "rasa.json"
HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
WARM_UP = 20
CONCURRENCY = 4
_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")


def debtor_messages() -> list[str]:
    """The held-out NLU examples as a debtor types them (entity annotations removed)."""
    data = yaml.safe_load(HOLDOUT.read_text(encoding="utf-8"))
    messages: list[str] = []
    for block in data.get("nlu", []):
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                messages.append(_ANNOTATION.sub(lambda m: m.group(1) or m.group(2), line[2:]))
    return messages


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(_percentile(seconds, 0.95) * 1000, 1),
        "p99_ms": round(_percentile(seconds, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 1),
    }


def vm_hwm_mib(pid: int) -> float:
    """Peak resident memory of a live process, from /proc (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class RasaServer:
    """``rasa run --enable-api`` on a loopback port, in its own process group."""

    @staticmethod
    def _plain_credentials(log: Path) -> Path:
        path = log.parent / "credentials.none.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("rest:\n")
        return path

    def __init__(self, model: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            str(rasa_executable(ROOT)),
            "run",
            "--enable-api",
            "-m",
            str(model),
            "--port",
            str(self.port),
            "--interface",
            "127.0.0.1",
            # Rasa's own REST channel, not ./credentials.yml's token-guarded one
            "--credentials",
            str(self._plain_credentials(log)),
        ]  # fmt: skip
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=rasa_env(ROOT),
            stdout=log.open("wb"),  # noqa: SIM115 (lives as long as the process)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_loaded(self, timeout: float = 600.0) -> float:
        """Seconds from start until ``/status`` names the loaded model."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"rasa run exited while loading; see {self.log}")
            try:
                response = httpx.get(f"{self.url}/status", timeout=2)
                if response.status_code == 200 and response.json().get("model_file"):
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"rasa run did not load the model in {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(30)


def parse_sequential(url: str, messages: list[str]) -> list[float]:
    seconds: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for text in messages:
            started = time.monotonic()
            response = client.post("/model/parse", json={"text": text})
            seconds.append(time.monotonic() - started)
            response.raise_for_status()
    return seconds


def parse_concurrent(url: str, messages: list[str], clients: int) -> tuple[float, list[float]]:
    """Wall time for ``clients`` keep-alive clients to parse ``messages``, and each latency."""
    work: queue.Queue[str] = queue.Queue()
    for text in messages:
        work.put(text)
    seconds: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                try:
                    text = work.get_nowait()
                except queue.Empty:
                    return
                started = time.monotonic()
                response = client.post("/model/parse", json={"text": text})
                took = time.monotonic() - started
                with lock:
                    seconds.append(took)
                    if response.status_code != 200:
                        errors.append(str(response.status_code))

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    if errors:
        raise SystemExit(f"parse errors at concurrency {clients}: {errors[:5]}")
    return wall, seconds


def measure_serving(model: Path, messages: list[str], workdir: Path) -> dict[str, Any]:
    server = RasaServer(model, workdir / "rasa-run.log")
    try:
        load_seconds = server.wait_loaded()
        parse_sequential(server.url, messages[:WARM_UP])
        sequential = parse_sequential(server.url, messages)
        wall, concurrent = parse_concurrent(server.url, messages, CONCURRENCY)
        peak = vm_hwm_mib(server.process.pid)
    finally:
        server.stop()
    return {
        "model_load_seconds": round(load_seconds, 1),
        "server_peak_rss_mib": peak,
        "parse_sequential": {"requests": len(sequential), **latency_summary(sequential)},
        "parse_sequential_per_second": round(len(sequential) / sum(sequential), 1),
        "parse_concurrent": {
            "clients": CONCURRENCY,
            "requests": len(concurrent),
            **latency_summary(concurrent),
        },
        "parse_concurrent_per_second": round(len(concurrent) / wall, 1),
    }


def measure_training(config: str, workdir: Path) -> dict[str, Any]:
    """``rasa train`` exactly as ``ensure_model`` runs it, into ``workdir``, cold cache."""
    out = workdir / "models"
    command = train_command(ROOT, config, out, "bench")
    env = rasa_env(ROOT)
    env["RASA_CACHE_DIRECTORY"] = str(workdir / "cache")  # empty: every component trains
    log = workdir / "rasa-train.log"
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child alone
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    model = out / "bench.tar.gz"
    if process.returncode != 0 or not model.exists():
        raise SystemExit(f"rasa train failed (exit {process.returncode}); see {log}")
    return {
        "config": config,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "model_mib": round(model.stat().st_size / 2**20, 1),
        "cache": "empty (a first training)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="~50 parses, no training")
    parser.add_argument("--model", type=Path, help="the model to serve (default: the CI model)")
    parser.add_argument("--train-config", default="config.yml", help="the config to train")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()

    serve_config = os.environ.get("ACUERDO_TRAIN_CONFIG", "config_ci.yml")
    model = args.model or latest_model(ROOT, serve_config)
    if model is None:
        raise SystemExit(f"no trained model for {serve_config}: run `acuerdo train` first")
    messages = debtor_messages()
    if args.smoke:
        messages = messages[::8][:50]
    workdir = Path(tempfile.mkdtemp(prefix="acuerdo-bench-rasa-"))
    try:
        result: dict[str, Any] = {"model": model.name, "smoke": args.smoke}
        result.update(measure_serving(model, messages, workdir))
        if args.smoke:
            result["training"] = "skipped in smoke mode"
        else:
            result["training"] = measure_training(args.train_config, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.update(
        {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    seq, conc = result["parse_sequential"], result["parse_concurrent"]
    print(f"Rasa engine, model {model.name} (figures from a shared machine: indicative)")
    print(f"  {'':34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    print(
        f"  {'/model/parse, 1 client (' + str(seq['requests']) + ')':34} {seq['p50_ms']:8.1f} "
        f"{seq['p95_ms']:8.1f} {seq['p99_ms']:8.1f} {result['parse_sequential_per_second']:8.1f}"
    )
    print(
        f"  {'/model/parse, ' + str(CONCURRENCY) + ' clients (' + str(conc['requests']) + ')':34} "
        f"{conc['p50_ms']:8.1f} {conc['p95_ms']:8.1f} {conc['p99_ms']:8.1f} "
        f"{result['parse_concurrent_per_second']:8.1f}"
    )
    print(f"  model load (start → /status):      {result['model_load_seconds']} s")
    print(f"  server peak RSS (VmHWM):           {result['server_peak_rss_mib']} MiB")
    training = result["training"]
    if isinstance(training, dict):
        print(
            f"  rasa train {training['config']} (cold cache): {training['wall_seconds']} s wall, "
            f"{training['cpu_seconds']} s CPU, peak RSS {training['peak_rss_mib']} MiB, "
            f"model {training['model_mib']} MiB"
        )
    else:
        print(f"  training: {training}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
