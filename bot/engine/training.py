"""Train the Rasa model only when its inputs changed (cached by content hash)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Everything that changes the trained model. bot/nlu is the custom NLU component.
MODEL_INPUTS = ("data", "domain.yml", "bot/nlu")


class TrainingError(RuntimeError):
    pass


def model_fingerprint(root: Path, config: str) -> str:
    """A short hash of the config file and every training input."""
    digest = hashlib.sha256()
    files = [root / config]
    for name in MODEL_INPUTS:
        path = root / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for file in files:
        if file.suffix == ".pyc" or not file.exists():
            continue
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def rasa_env(root: Path) -> dict[str, str]:
    """Environment for any process of the Rasa engine."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def rasa_executable(root: Path) -> Path:
    rasa = root / ".venv-rasa" / "bin" / "rasa"
    if not rasa.exists():
        raise TrainingError(f"{rasa} not found: run 'make setup' first")
    return rasa


def model_path(root: Path, config: str) -> Path:
    stem = Path(config).stem.replace("_", "-")
    return root / "models" / f"acuerdo-{stem}-{model_fingerprint(root, config)}.tar.gz"


def train_command(root: Path, config: str, out: Path, name: str) -> list[str]:
    """``rasa train`` of our domain and data with ``config``, into ``out/<name>.tar.gz``."""
    return [
        str(rasa_executable(root)), "train", "--config", config, "--domain", "domain.yml",
        "--data", "data", "--out", str(out), "--fixed-model-name", name,
    ]  # fmt: skip


def ensure_model(root: Path, config: str = "config.yml", *, force: bool = False) -> Path:
    """Return the trained model for ``config``, training it first if needed."""
    if not (root / config).exists():
        raise TrainingError(f"Rasa config {config} not found in {root}")
    target = model_path(root, config)
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="acuerdo-train-") as scratch:
        # Rasa writes the defaults it chose for missing keys into the config it was given
        # (config_default.yml has none); a copy keeps the repository's file, and so the
        # model's fingerprint, as it was.
        copy = Path(scratch) / Path(config).name
        shutil.copyfile(root / config, copy)
        command = train_command(root, str(copy), target.parent, target.name.removesuffix(".tar.gz"))
        result = subprocess.run(command, cwd=root, env=rasa_env(root))
    if result.returncode != 0 or not target.exists():
        raise TrainingError(f"rasa train failed (exit {result.returncode}); see the output above")
    return target


def latest_model(root: Path, config: str = "config.yml") -> Path | None:
    """The cached model matching the current inputs, if it has been trained."""
    target = model_path(root, config)
    return target if target.exists() else None


def serve_command(
    root: Path,
    model: Path,
    *,
    port: int,
    token: str,
    endpoints: str = "endpoints.yml",
    interface: str = "127.0.0.1",
) -> list[str]:
    """``rasa run`` of ``model``: its HTTP API behind ``token`` (``--auth-token``) and only
    the token-guarded REST channel (``credentials.yml``, bot/rasa_channel.py). The channel
    reads the token from ``ACUERDO_INTERNAL_TOKEN`` in the process's environment."""
    return [
        str(rasa_executable(root)), "run", "--enable-api", "--auth-token", token,
        "-m", str(model), "--port", str(port), "--interface", interface,
        "--endpoints", endpoints, "--credentials", "credentials.yml",
    ]  # fmt: skip
