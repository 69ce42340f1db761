"""Sampling profiles of running processes with py-spy, summarised as small tables.

``Profilers(services, directory)`` attaches ``py-spy record --nonblocking`` to every process
(the process is never paused, so throughput is barely touched) and ``stop()`` ends the
recordings and returns, per process, where its CPU samples fell: the functions with the most
*self* samples, and our own functions (``bot/``, ``actions/``) with the most *inclusive*
samples. The raw collapsed stacks stay in ``directory`` for a flame graph.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
# py-spy names a module by the path it was imported from: absolute, or relative to the
# working directory (the repository, for the gateway).
OUR_CODE = (f"{REPO_ROOT}/bot/", f"{REPO_ROOT}/actions/", " (bot/", " (actions/")
TOP = 8


class _Process(Protocol):
    name: str

    @property
    def pid(self) -> int: ...


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed (it is in the dev extra)")
    return found


class Profilers:
    def __init__(
        self,
        processes: list[_Process],
        directory: Path,
        rate: int = 67,
        native: tuple[str, ...] = ("rasa",),
        blocking: bool = False,
    ) -> None:
        """``native``: processes (by name prefix) whose time outside Python counts too
        (TensorFlow in Rasa); the others are sampled only while they hold the GIL, which
        leaves out threads that merely wait. ``blocking``: pause the process for each
        sample, for whole stacks (a running process's are sometimes torn) at some cost."""
        directory.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, Path] = {}
        self._children: list[subprocess.Popen[bytes]] = []
        for process in processes:
            target = directory / f"{process.name}.collapsed"
            self.files[process.name] = target
            self._children.append(
                subprocess.Popen(
                    [
                        py_spy(),
                        "record",
                        "--pid",
                        str(process.pid),
                        *([] if blocking else ["--nonblocking"]),
                        *([] if process.name.startswith(native) else ["--gil"]),
                        "--function",
                        "--format",
                        "raw",
                        "--rate",
                        str(rate),
                        "--output",
                        str(target),
                    ],  # fmt: skip
                    stdout=subprocess.DEVNULL,
                    stderr=(directory / f"{process.name}.py-spy.log").open("wb"),
                )
            )

    def stop(self) -> dict[str, list[tuple[str, float]]]:
        for child in self._children:
            child.send_signal(signal.SIGINT)
        for child in self._children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        return {name: summarise(path) for name, path in self.files.items() if path.exists()}


def _frame(raw: str) -> str:
    """``func (/long/path/to/module.py)`` → ``module.py:func`` with a short path."""
    name, _, where = raw.partition(" (")
    path = where.rstrip(")").split(":")[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{short}:{name}"


def summarise(path: Path) -> list[tuple[str, float]]:
    """Top self frames, then our own code's top inclusive frames (marked ``incl``), in % of
    all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[_frame(frames[-1])] += count
        seen = set()
        for raw in frames:
            if any(marker in raw for marker in OUR_CODE):
                frame = _frame(raw)
                if frame not in seen:
                    seen.add(frame)
                    inclusive[frame] += count
    if total == 0:
        return []
    rows = [(f"self  {frame}", 100 * n / total) for frame, n in own.most_common(TOP)]
    rows += [(f"incl  {frame}", 100 * n / total) for frame, n in inclusive.most_common(TOP)]
    return [(frame, round(share, 1)) for frame, share in rows]
