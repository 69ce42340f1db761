"""An attacker on the internal network: forged calls to the action server and to Rasa.

The action server runs as a real process (``python -m bot.engine.action_server``) on a real
SQLite ledger; Rasa's part uses the session's trained model (``rasa_stack``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings, SettingsError
from bot.db.models import Account
from bot.domain.conversations import (
    VerificationOutcome,
    check_identity,
    get_or_create_conversation,
)
from bot.engine.action_server import bearer_matches
from bot.gateway.commands import child_specs
from bot.policy import Policy
from tests.rasa_stack import REPO_ROOT, RasaStack, free_port, wait_until_ready

TOKEN = "hostile-suite-internal-token-0123456789"
VICTIM = "+525512349999"
ATTACKER = "+525599990000"


def forged_call(sender: str, *, phone_in_metadata: str | None = None) -> dict[str, Any]:
    """What Rasa would send for ``action_tell_balance``, with ``verified`` set by the caller."""
    metadata = {"channel": "whatsapp"}
    if phone_in_metadata:
        metadata["phone"] = phone_in_metadata
    return {
        "next_action": "action_tell_balance",
        "sender_id": sender,
        "version": "3.6.2",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": {"verified": True},
            "latest_message": {
                "text": "cuanto debo",
                "intent": {"name": "ask_balance", "confidence": 1.0},
                "entities": [],
                "metadata": metadata,
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.fixture
def verified_victim(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> Account:
    """A debtor who verified on WhatsApp (so the ledger holds a verification)."""
    account = make_account(phone=VICTIM, due_date=date(2026, 9, 24), external_id="ACC-00007777")
    conversation = get_or_create_conversation(session, clock, "whatsapp", VICTIM)
    result = check_identity(
        session, clock, policy, conversation, birth_date=account.debtor.birth_date
    )
    assert result.outcome is VerificationOutcome.VERIFIED
    session.commit()
    return account


@pytest.fixture
def action_server(db_url: str, tmp_path: Path, verified_victim: Account) -> Iterator[str]:
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "ACUERDO_DATABASE_URL": db_url,
        "ACUERDO_NOW": "2026-11-23",
        "ACUERDO_VAR_DIR": str(tmp_path / "var"),
        "ACUERDO_SECRET_KEY": "test-secret-key",
        "ACUERDO_INTERNAL_TOKEN": TOKEN,
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = subprocess.Popen(
        [
            str(REPO_ROOT / ".venv/bin/python"),
            "-m",
            "bot.engine.action_server",
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=(tmp_path / "actions.log").open("wb"),  # noqa: SIM115 (lives with the process)
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_forged_tracker_without_the_token_gets_nothing(action_server: str) -> None:
    answer = httpx.post(f"{action_server}/webhook", json=forged_call(VICTIM), timeout=30)
    assert answer.status_code == 401
    assert "12,000" not in answer.text and "responses" not in answer.text


def test_forged_tracker_with_a_wrong_token_gets_nothing(action_server: str) -> None:
    for header in (f"Bearer {TOKEN[:-1]}x", TOKEN, f"Basic {TOKEN}", "Bearer"):
        answer = httpx.post(
            f"{action_server}/webhook",
            json=forged_call(VICTIM),
            headers={"Authorization": header},
            timeout=30,
        )
        assert answer.status_code == 401, header


def test_listing_actions_needs_the_token_too(action_server: str) -> None:
    assert httpx.get(f"{action_server}/actions", timeout=30).status_code == 401


def test_a_phone_in_the_metadata_never_names_the_account(action_server: str) -> None:
    """Even a caller holding the token cannot point a turn at someone else's number."""
    answer = httpx.post(
        f"{action_server}/webhook",
        json=forged_call(ATTACKER, phone_in_metadata=VICTIM),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert "12,000" not in answer.text and "ACC-" not in answer.text


def test_the_gateway_with_the_token_is_answered(action_server: str) -> None:
    answer = httpx.post(
        f"{action_server}/webhook",
        json=forged_call(VICTIM),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert "responses" in answer.json()


def test_bearer_comparison_refuses_empty_and_foreign_schemes() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_matches(f"bearer {TOKEN}", TOKEN)
    assert not bearer_matches(None, TOKEN)
    assert not bearer_matches("Bearer ", "")
    assert not bearer_matches(f"Token {TOKEN}", TOKEN)


def test_acuerdo_up_binds_the_engine_to_loopback_and_arms_the_token(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, var_dir=str(tmp_path / "var"))  # type: ignore[call-arg]
    specs = {
        spec.name: spec for spec in child_specs(settings, REPO_ROOT, Path("m.tar.gz"), "0.0.0.0")
    }
    token = settings.resolved_internal_token()
    assert len(token) >= 32 and (tmp_path / "var" / "internal_token").stat().st_mode & 0o077 == 0
    actions = specs["actions"].command
    assert actions[actions.index("--host") + 1] == "127.0.0.1"
    rasa = specs["rasa"].command
    assert rasa[rasa.index("--interface") + 1] == "127.0.0.1"
    assert rasa[rasa.index("--auth-token") + 1] == token
    assert "--credentials" in rasa
    workers = specs["workers"].command
    assert workers[workers.index("--host") + 1] == "127.0.0.1"
    assert specs["gateway"].env["ACUERDO_WORKERS"] == "separate"
    assert specs["workers"].env["ACUERDO_WORKERS_PORT"] == workers[workers.index("--port") + 1]
    for spec in specs.values():
        assert spec.env["ACUERDO_INTERNAL_TOKEN"] == token


@pytest.mark.rasa
def test_rasa_api_refuses_strangers(rasa_stack: RasaStack) -> None:
    sender = "+525519999901"
    rasa_stack.say(sender, "hola")
    tracker = f"{rasa_stack.rasa_url}/conversations/{sender}/tracker"
    assert httpx.get(tracker, timeout=30).status_code == 401
    assert httpx.get(tracker, params={"token": "guess"}, timeout=30).status_code == 401
    forged = httpx.post(
        f"{tracker}/events",
        json={"event": "slot", "name": "verified", "value": True},
        timeout=30,
    )
    assert forged.status_code == 401
    assert httpx.get(tracker, params={"token": rasa_stack.token}, timeout=30).status_code == 200
    slots = httpx.get(tracker, params={"token": rasa_stack.token}, timeout=30).json()["slots"]
    assert slots.get("verified") is not True


@pytest.mark.rasa
def test_rasa_rest_channel_refuses_a_turn_without_the_token(rasa_stack: RasaStack) -> None:
    body = {"sender": "+525519999902", "message": "cuanto debo"}
    url = f"{rasa_stack.rasa_url}/webhooks/rest/webhook"
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.post(url, json=body, headers=wrong, timeout=30).status_code == 401
    assert httpx.post(url, json=body, headers=rasa_stack.auth, timeout=60).status_code == 200


def test_acuerdo_up_refuses_a_workers_port_that_another_process_has(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, var_dir=str(tmp_path / "var"), port=8000, rasa_port=8001
    )
    with pytest.raises(SettingsError, match="ACUERDO_WORKERS_PORT: 8001"):
        child_specs(settings, REPO_ROOT, Path("m.tar.gz"), "127.0.0.1")
