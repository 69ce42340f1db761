"""Rasa sends the domain only to the actions that read it (``enable_selective_domain``).

Every call to the action server carried the whole domain (20 KB of JSON) for Rasa to encode
and the action server to parse; only the forms' ``validate_*`` actions read it (their
required slots). This runs Rasa's own call-building code, in ``.venv-rasa``, with both
endpoint files; the conversation tests show the actions still work without it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rasa_engine import RASA_PYTHON, REPO_ROOT, run_in_rasa_engine

SCRIPT = r"""
import json, sys

from rasa.core.actions.action import RemoteAction
from rasa.core.utils import read_endpoints_from_path
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

domain = Domain.load("domain.yml")
tracker = DialogueStateTracker.from_events("+525500000001", [], domain.slots)
sent = {}
for path in sys.argv[1:]:
    endpoint = read_endpoints_from_path(path).action
    sent[path] = sorted(
        name
        for name in domain.user_actions
        if "domain" in RemoteAction(name, endpoint)._action_call_format(tracker, domain)
    )
print("RESULT:" + json.dumps({"sent": sent, "actions": sorted(domain.user_actions)}))
"""

ENDPOINTS = ("endpoints.yml", "deploy/endpoints.scaled.yml")


@pytest.fixture(scope="module")
def calls() -> dict[str, Any]:
    if not RASA_PYTHON.exists():
        pytest.skip("the Rasa engine's env (.venv-rasa) is not set up")
    env = {
        "ACTION_PORT": "5055",
        "ACTION_SERVER_URL": "http://127.0.0.1:5055",
        "ACUERDO_INTERNAL_TOKEN": "x" * 32,
        "RASA_TRACKER_STORE_URL": "sqlite:///unused.db",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "6379",
    }
    result: dict[str, Any] = run_in_rasa_engine(SCRIPT, *ENDPOINTS, env=env)
    return result


def _actions_reading_the_domain() -> set[str]:
    """The custom actions whose code names its ``domain`` argument beyond the signature."""
    readers = set()
    for path in (REPO_ROOT / "actions").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            name = _action_name(node)
            uses = {
                n.id
                for n in ast.walk(node)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
            if name and {"domain", "domain_slots"} & uses:
                readers.add(name)
    return readers


def _action_name(node: ast.ClassDef) -> str | None:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "name":
            for statement in ast.walk(item):
                if isinstance(statement, ast.Return) and isinstance(statement.value, ast.Constant):
                    return str(statement.value.value)
    return None


@pytest.mark.parametrize("endpoints", ENDPOINTS)
def test_only_the_forms_validations_get_the_domain(calls: dict[str, Any], endpoints: str) -> None:
    validations = sorted(a for a in calls["actions"] if a.startswith("validate_"))
    assert len(validations) == 5
    assert calls["sent"][endpoints] == validations


def test_every_action_that_reads_the_domain_is_sent_it(calls: dict[str, Any]) -> None:
    readers = _actions_reading_the_domain()
    assert readers, "the scan found no action reading its domain: it is looking wrong"
    assert readers <= set(calls["sent"]["endpoints.yml"])


def test_both_endpoint_files_say_so() -> None:
    for name in ENDPOINTS:
        config = yaml.safe_load(Path(REPO_ROOT / name).read_text(encoding="utf-8"))
        assert config["action_endpoint"]["enable_selective_domain"] is True
