"""Run a script inside the Rasa engine's own env (``.venv-rasa``) and read its findings.

``make test`` runs pytest in ``.venv``, which has no Rasa; tests of code that runs inside
Rasa (the NLU component, the tracker stores, the speed-ups) run a small script there. The
script prints one line ``RESULT:<json>``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = REPO_ROOT / ".venv-rasa" / "bin" / "python"


def run_in_rasa_engine(
    script: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Any:
    """Run ``script`` with ``args`` in ``.venv-rasa``; its ``RESULT:`` JSON, decoded."""
    completed = subprocess.run(
        [str(RASA_PYTHON), "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            **(env or {}),
        },
        timeout=300,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT:")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT:"))
