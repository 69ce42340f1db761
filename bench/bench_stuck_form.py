"""Benchmark: one sender who keeps ignoring the identity question (issue 14).

    python -m bench.bench_stuck_form              # 3 blocks of 20 turns
    python -m bench.bench_stuck_form --blocks 5

Starts the real Rasa server (CI model, ``endpoints.yml``'s folding tracker store) and the
action server on a seeded SQLite ledger (``tests/rasa_stack.start_stack``), then one
sender writes "cuanto debo" again and again through Rasa's REST channel: the verification
form asks for the birth date every time and never ends. Measured per block of turns: the
Rasa and action-server CPU per turn (``/proc/<pid>/stat``) and wall time per turn; at the
end, how many events Rasa's tracker holds.

Run twice in one go: with the store as shipped, and with folding pushed out of reach
(``ACUERDO_TRACKER_MAX_TURNS`` = 100000), which is what a tracker stuck in a form got before
the store folded inside forms. Compare the ratios of the last block to the first, measured
in the same run. Written to ``bench/results/stuck_form.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.rasa_stack import RasaStack, start_stack

RESULTS = Path(__file__).resolve().parent / "results" / "stuck_form.json"
SENDER = "+525510000020"
BLOCK = 20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tracker_events(stack: RasaStack) -> int:
    tracker = httpx.get(
        f"{stack.rasa_url}/conversations/{SENDER}/tracker",
        params={"token": stack.token, "include_events": "ALL"},
        timeout=30,
    ).json()
    return len(tracker["events"])


def run(blocks: int, **env: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir, start_stack(Path(workdir), **env) as stack:
        stack.say("+525510000019", "hola")  # warm-up on another sender (first-call costs)
        rows = []
        for block in range(blocks):
            rasa0, actions0 = cpu_seconds(stack.pids["rasa"]), cpu_seconds(stack.pids["actions"])
            wall0 = time.perf_counter()
            for _ in range(BLOCK):
                replies = stack.say(SENDER, "cuanto debo")
                assert any("fecha de nacimiento" in (r.get("text") or "") for r in replies)
            wall = time.perf_counter() - wall0
            rows.append(
                {
                    "turns": f"{block * BLOCK + 1}-{(block + 1) * BLOCK}",
                    "rasa_cpu_ms": round(
                        (cpu_seconds(stack.pids["rasa"]) - rasa0) * 1000 / BLOCK, 1
                    ),
                    "actions_cpu_ms": round(
                        (cpu_seconds(stack.pids["actions"]) - actions0) * 1000 / BLOCK, 1
                    ),
                    "wall_ms": round(wall * 1000 / BLOCK, 1),
                }
            )
        return {"blocks": rows, "tracker_events_at_end": tracker_events(stack)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    shipped = run(args.blocks)
    unfolded = run(args.blocks, ACUERDO_TRACKER_MAX_TURNS="100000")
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "turn": '"cuanto debo" inside the verification form, Rasa REST channel',
        "folding_store": shipped,
        "no_folding": unfolded,
    }
    for name in ("folding_store", "no_folding"):
        rows = result[name]["blocks"]
        first, last = rows[0]["rasa_cpu_ms"], rows[-1]["rasa_cpu_ms"]
        result[name]["rasa_cpu_last_over_first"] = round(last / first, 2) if first else None
        print(f"{name}: tracker events at end {result[name]['tracker_events_at_end']}")
        for row in rows:
            print(
                f"  turns {row['turns']:>7}: Rasa {row['rasa_cpu_ms']:6.1f} ms CPU, "
                f"actions {row['actions_cpu_ms']:5.1f} ms, wall {row['wall_ms']:6.1f} ms"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
