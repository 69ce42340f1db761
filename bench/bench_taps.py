"""Benchmark: what a tapped option costs Rasa, against the same message typed (issue 14).

    python -m bench.bench_taps               # 60 turns of each kind, two Rasa processes
    python -m bench.bench_taps --turns 100

Starts the real Rasa server (CI model) and action server (``tests/rasa_stack.start_stack``)
and sends, on alternating senders, the greeting typed ("hola") and tapped (``/greet``, the
payload of the greeting's button): the dialogue is the same, only the reading of the message
differs. Rasa's CPU per turn comes from ``/proc/<pid>/stat``.

Run twice in one go: with the channel as shipped (a payload's parse is handed to Rasa, the
NLU graph does not run) and with that turned off inside the same Rasa build (the graph reads
the payload, as Rasa 3.6 does on its own). Written to ``bench/results/taps.json``.
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

from bench.bench_stuck_form import cpu_seconds
from tests.rasa_stack import RasaStack, start_stack

RESULTS = Path(__file__).resolve().parent / "results" / "taps.json"
KINDS = {"typed": "hola", "tapped": "/greet"}
# Inside Rasa, before it starts: the channel hands no parse over (Rasa's own behaviour).
GRAPH_FOR_PAYLOADS = "import bot.rasa_channel as channel\nchannel.payload_parse = lambda *_: None\n"


def measure(stack: RasaStack, text: str, turns: int, offset: int) -> dict[str, float]:
    rasa, actions = stack.pids["rasa"], stack.pids["actions"]
    rasa0, actions0, wall0 = cpu_seconds(rasa), cpu_seconds(actions), time.perf_counter()
    for n in range(turns):
        sender = f"+5255188{offset + n % 10:05d}"  # ten senders: short trackers, no history
        assert stack.say(sender, text), text
    return {
        "rasa_cpu_ms": round((cpu_seconds(rasa) - rasa0) * 1000 / turns, 1),
        "actions_cpu_ms": round((cpu_seconds(actions) - actions0) * 1000 / turns, 1),
        "wall_ms": round((time.perf_counter() - wall0) * 1000 / turns, 1),
    }


def run(turns: int, prelude: str | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        start_stack(Path(workdir), rasa_prelude=prelude) as stack,
    ):
        for text in KINDS.values():  # warm-up: TensorFlow traces its graphs on first use
            for _ in range(5):
                stack.say("+525518899999", text)
        rows: dict[str, Any] = {}
        for round_ in range(2):  # interleaved, so drift hits both kinds alike
            for offset, (kind, text) in enumerate(KINDS.items()):
                row = measure(stack, text, turns // 2, offset * 10)
                if round_:
                    row = {k: round((v + rows[kind][k]) / 2, 1) for k, v in row.items()}
                rows[kind] = row
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "turns_per_kind": args.turns,
        "payload_parse_handed_over": run(args.turns, None),
        "graph_reads_payloads": run(args.turns, GRAPH_FOR_PAYLOADS),
    }
    for name in ("graph_reads_payloads", "payload_parse_handed_over"):
        print(name)
        for kind, row in result[name].items():
            print(
                f"  {kind:>6} ({KINDS[kind]}): Rasa {row['rasa_cpu_ms']:5.1f} ms CPU, "
                f"actions {row['actions_cpu_ms']:4.1f} ms, wall {row['wall_ms']:6.1f} ms per turn"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
