"""Benchmark: what each of ``bot/rasa_speedups.py``'s patches saves Rasa per turn (issue 14).

    python -m bench.bench_speedups               # 60 turns per run, each patch off and on
    python -m bench.bench_speedups --turns 120

Starts the real Rasa server (CI model) and action server (``tests/rasa_stack.start_stack``)
once per row, the same build each time; a row turns one patch off inside Rasa before it
starts (``rasa_prelude``). Each row drives five senders through the same conversation (a
greeting, the balance asked before and after the identity questions, a payment question),
so trackers grow to the folding store's size as in a real chat. Rasa's and the action
server's CPU per turn come from ``/proc/<pid>/stat``. Written to
``bench/results/speedups.json``.
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
from tests.rasa_stack import STACK_DEBTORS, RasaStack, start_stack

RESULTS = Path(__file__).resolve().parent / "results" / "speedups.json"
# Each prelude replaces the installer so that one patch stays off (the rest as shipped).
ROWS: dict[str, str | None] = {
    "all patches (shipped)": None,
    "without the event-class map": (
        "import bot.rasa_speedups as s\n"
        "from rasa.core.actions.action import RemoteAction\n"
        "def _install():\n"
        "    RemoteAction._validate_action_result = s.validate_action_result\n"
        "s.install = _install\n"
    ),
    "without the compiled answer schema": (
        "import bot.rasa_speedups as s\n"
        "from rasa.shared.core.events import Event\n"
        "def _install():\n"
        "    Event.resolve_by_type = staticmethod(s.resolve_event_type)\n"
        "s.install = _install\n"
    ),
}


def conversation(debtor_index: int) -> list[str]:
    debtor = STACK_DEBTORS[debtor_index]
    birth = debtor.birth_date.strftime("%d/%m/%Y")
    return ["hola", "cuanto debo", birth, "cuanto debo", "/ask_balance", "como puedo pagar"]


def measure(stack: RasaStack, turns: int) -> dict[str, float]:
    rasa, actions = stack.pids["rasa"], stack.pids["actions"]
    rasa0, actions0, wall0 = cpu_seconds(rasa), cpu_seconds(actions), time.perf_counter()
    done = 0
    while done < turns:
        for index in range(5):
            sender, script = STACK_DEBTORS[index].phone, conversation(index)
            stack.say(sender, script[(done // 5) % len(script)])
            done += 1
    return {
        "rasa_cpu_ms": round((cpu_seconds(rasa) - rasa0) * 1000 / done, 1),
        "actions_cpu_ms": round((cpu_seconds(actions) - actions0) * 1000 / done, 1),
        "wall_ms": round((time.perf_counter() - wall0) * 1000 / done, 1),
    }


def run(turns: int, prelude: str | None) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        start_stack(Path(workdir), rasa_prelude=prelude) as stack,
    ):
        stack.say("+525518899999", "hola")  # warm-up: TensorFlow traces its graphs
        stack.say("+525518899999", "cuanto debo")
        measure(stack, 10)  # the trackers grow to their working size first
        return measure(stack, turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = {name: run(args.turns, prelude) for name, prelude in ROWS.items()}
    cores = os.cpu_count()
    print(f"\nRasa and action-server CPU per turn, {args.turns} turns per row ({cores} cores)")
    print(f"  {'row':<38} {'Rasa ms':>8} {'actions ms':>11} {'wall ms':>8}")
    for name, row in rows.items():
        print(
            f"  {name:<38} {row['rasa_cpu_ms']:8.1f} {row['actions_cpu_ms']:11.1f}"
            f" {row['wall_ms']:8.1f}"
        )
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "turns_per_row": args.turns,
        "rows": rows,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
