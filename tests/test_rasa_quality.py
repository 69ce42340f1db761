"""Quality gates of the Rasa assistant: data validation, NLU on held-out data, test stories."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.engine.training import latest_model, rasa_env
from tests.rasa_stack import QUALITY_REPORT, STACK_NOW, RasaStack

pytestmark = pytest.mark.rasa

REPO_ROOT = Path(__file__).resolve().parent.parent
RASA = str(REPO_ROOT / ".venv-rasa/bin/rasa")
MIN_MACRO_F1 = 0.93
MIN_ENTITY_VALUE_ACCURACY = 0.9
_ANNOTATION = re.compile(r"\[([^\]]+)\](\([^)]+\)|\{[^}]+\})")


def _holdout() -> list[tuple[str, str]]:
    """(plain text, intent) pairs of tests/nlu_holdout.yml, with entity markup removed."""
    data = yaml.safe_load((REPO_ROOT / "tests/nlu_holdout.yml").read_text(encoding="utf-8"))
    pairs = []
    for block in data["nlu"]:
        if "intent" not in block:
            continue
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((_ANNOTATION.sub(r"\1", line[2:]), block["intent"]))
    return pairs


def f1_by_intent(gold: list[str], predicted: list[str]) -> dict[str, float]:
    scores = {}
    for intent in sorted(set(gold)):
        tp = sum(g == p == intent for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == intent and g != intent for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == intent and p != intent for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores[intent] = 2 * precision * recall / (precision + recall) if tp else 0.0
    return scores


def test_training_data_validates() -> None:
    result = subprocess.run(
        [RASA, "data", "validate", "--max-history", "5"],
        cwd=REPO_ROOT,
        env=rasa_env(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "UserWarning" in line]
    # Responses that only actions send are "not used in any story"; every one of them must
    # really be sent by an action, and there must be no other warning.
    actions_source = "\n".join(p.read_text() for p in (REPO_ROOT / "actions").glob("*.py"))
    for line in warnings:
        unused = re.search(r"The utterance '(\w+)' is not used in any story or rule", line)
        assert unused, line
        name = unused.group(1)
        sent_by_action = f'"{name}"' in actions_source
        asked_by_form = name.startswith("utter_ask_")
        assert sent_by_action or asked_by_form, f"{name} is never sent"


def test_intent_classification_on_held_out_data(rasa_stack: RasaStack) -> None:
    pairs = _holdout()
    predicted = [rasa_stack.parse(text)["intent"]["name"] for text, _ in pairs]
    gold = [intent for _, intent in pairs]
    scores = f1_by_intent(gold, predicted)
    macro = sum(scores.values()) / len(scores)
    report = [f"NLU held-out report ({len(pairs)} examples, {len(scores)} intents)"]
    report += [f"  {intent:24s} F1 {score:.3f}" for intent, score in sorted(scores.items())]
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    report.append(f"  macro-F1 {macro:.3f}; accuracy {accuracy:.3f} (gate: {MIN_MACRO_F1})")
    confusions = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    report += [f"  confused {g} -> {p}: {n}" for (g, p), n in confusions.most_common(8)]
    QUALITY_REPORT.extend(report)
    print("\n".join(report))
    assert macro >= MIN_MACRO_F1


def test_entity_values_are_normalised(rasa_stack: RasaStack) -> None:
    cases: list[dict[str, Any]] = yaml.safe_load(
        (REPO_ROOT / "tests/entity_values.yml").read_text(encoding="utf-8")
    )["cases"]
    assert rasa_stack.env["ACUERDO_NOW"] == STACK_NOW
    misses = []
    for case in cases:
        entities = rasa_stack.parse(case["text"])["entities"]
        values = [e["value"] for e in entities if e["entity"] == case["entity"]]
        if case["value"] not in values:
            misses.append(f"{case['text']!r}: {case['entity']} {values} != {case['value']!r}")
    accuracy = 1 - len(misses) / len(cases)
    report = [f"Entity value accuracy {accuracy:.3f} ({len(cases) - len(misses)}/{len(cases)})"]
    report += [f"  miss {miss}" for miss in misses]
    QUALITY_REPORT.extend(report)
    print("\n".join(report))
    assert accuracy >= MIN_ENTITY_VALUE_ACCURACY


def test_every_flow_passes_its_test_story(tmp_path: Path) -> None:
    import os

    model = latest_model(REPO_ROOT, os.environ.get("ACUERDO_TRAIN_CONFIG", "config_ci.yml"))
    assert model is not None
    result = subprocess.run(
        [
            RASA,
            "test",
            "core",
            "-m",
            str(model),
            "--stories",
            "tests/test_stories.yml",
            "--fail-on-prediction-errors",
            "--no-plot",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        env=rasa_env(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = tmp_path / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-2000:] + detail)[-6000:]
