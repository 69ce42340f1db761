"""Schemathesis against the gateway's own OpenAPI document, over real HTTP.

The gateway is served by uvicorn in a thread on a free loopback port (``tests/live_gateway.py``:
lifespan and workers running, a migrated SQLite ledger, Rasa and the Graph API stood in);
the cases travel over real sockets with ``requests``. Two gateways: a normal one (its own
WhatsApp secrets, RCS off) fuzzed on every operation, and the sandbox, fuzzed on the routes
only it has (and the RCS webhook, which the sandbox turns on).

For each operation Schemathesis generates cases from the schema, valid ones and ones that
break it (wrong types, missing fields, bad formats), and each case is sent as one of three
callers, drawn by Hypothesis:

- a stranger: no cookie, no token, no signature;
- a signed-in agent, and a signed-in supervisor: the console session cookie and its CSRF
  token on every request; the sandbox sinks' bearer tokens; and for webhooks a correct
  signature over the exact body bytes, so the parsers behind the signature are reached
  (``tests/test_fuzz_parsers.py`` goes deeper there).

Every answer must not be a 5xx (``not_a_server_error``). The gateway's own routes (webhooks,
payment pages, health, sandbox) document every answer they give (``bot/gateway/routes/
schemas.py``), so theirs must also conform in status code, content type and JSON schema.
The console and dashboard answer 303/401/403/404/409 that their routes do not declare; they
get the 5xx check only.

Each operation is a few seeded runs (the same cases on every machine); the cases are
counted in :data:`CASES` and the last test prints the tally and checks the budget.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.channels.rcs import SANDBOX_RBM_TOKEN
from bot.channels.rcs_parse import SIGNATURE_HEADER as RBM_SIGNATURE_HEADER
from bot.channels.rcs_parse import push_data, sign_data
from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_RCS_CLIENT_TOKEN
from bot.console import live
from bot.console_users import create_console_user
from bot.db.engine import session_factory
from bot.domain.conversations import get_or_create_conversation, request_handoff
from bot.domain.debtors import upsert_account
from bot.payments.local import SIGNATURE_HEADER as PAYMENT_SIGNATURE_HEADER
from bot.payments.local import sign_local_webhook
from tests.accounts import account_data
from tests.live_gateway import LiveGateway, live_gateway

CASES: Counter[str] = Counter()
EXAMPLES = 30  # per operation and run (operations without inputs have fewer to give)
RUNS = 2  # seeded runs per operation
# With tests/test_fuzz_parsers.py's 8,000, the fuzz suite generates over 10,000 cases.
BUDGET = 2_000
PASSWORD = "fuzz-password-123"
CALLERS = ["stranger", "agent", "supervisor"]
SIGNED_IN = {"agent": "agente", "supervisor": "supervisora"}  # caller: console user
# Routes whose every answer is documented in the schema (the gateway's own).
DOCUMENTED = ("/webhooks/", "/pay/", "/constancias/", "/healthz", "/readyz", "/metrics", "/sandbox")
FUZZ = settings(
    deadline=None,
    database=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Api:
    """One served gateway, its schema, and how to call it as each caller."""

    gateway: LiveGateway
    schema: Any
    csrf: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, dict[str, str]] = field(default_factory=dict)
    http: requests.Session = field(default_factory=requests.Session)


def _operations(sandbox: bool) -> list[str]:
    """The labels ("POST /webhooks/whatsapp") of a gateway's operations, without serving it."""
    from bot.config import Settings
    from bot.gateway.app import create_app
    from tests.live_gateway import REAL_SECRETS, SANDBOX_ON

    overrides = SANDBOX_ON if sandbox else REAL_SECRETS
    settings_ = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="sqlite:///schema-only.db",  # never opened: the schema needs no ledger
        secret_key="schema-only",
        policy_file=str(Path(__file__).resolve().parent.parent / "policy.yml"),
        **overrides,
    )
    paths = create_app(settings_).openapi()["paths"]
    return sorted(f"{method.upper()} {path}" for path, ops in paths.items() for method in ops)


NORMAL_OPERATIONS = _operations(sandbox=False)
SANDBOX_ONLY = sorted(set(_operations(sandbox=True)) - set(NORMAL_OPERATIONS))
SANDBOX_OPERATIONS = [*SANDBOX_ONLY, "POST /webhooks/rcs"]


def _seed_ledger(gateway: LiveGateway) -> None:
    """Console users, and a debtor waiting for a person, so ids 1… lead somewhere."""
    settings_ = gateway.settings
    clock = settings_.clock()
    with session_factory(settings_.database_url)() as session:
        create_console_user(session, clock, "agente", PASSWORD, "agent")
        create_console_user(session, clock, "supervisora", PASSWORD, "supervisor")
        upsert_account(
            session,
            clock,
            account_data("FUZZ-1", "Deudora Fuzz", "+525512340001"),
        )
        conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512340001")
        conversation.last_inbound_at = clock.now_utc()
        conversation.verified_at = clock.now_utc()
        request_handoff(session, clock, conversation, reason="debtor_request", priority=40)
        session.commit()


def _sign_in(api: Api, username: str) -> tuple[dict[str, str], str]:
    """Sign in through the login form; the session cookies and the CSRF token."""
    with requests.Session() as browser:
        form = browser.get(f"{api.gateway.url}/console/login", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        answer = browser.post(
            f"{api.gateway.url}/console/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
            timeout=30,
        )
        csrf = re.search(r'data-csrf="([^"]+)"', answer.text)
        assert answer.status_code == 200 and csrf is not None, answer.status_code
        return dict(browser.cookies), csrf.group(1)


@contextlib.contextmanager
def served_api(workdir: Path, *, sandbox: bool) -> Iterator[Api]:
    # Every fuzzed sign-in comes from 127.0.0.1, and a fuzzed sign-out ends the caller's
    # session on the server, so the harness signs in again after one: the throttles
    # (tests/test_hostile_sign_in.py) must not turn its own sign-ins away.
    roomy = {"signin_address_failures": 100_000, "signin_user_address_failures": 100_000}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(live, "STREAM_SECONDS", 0.0)  # live streams answer, then end at once
        with live_gateway(workdir, sandbox=sandbox, **roomy) as gateway:
            _seed_ledger(gateway)
            api = Api(gateway, schemathesis.openapi.from_dict(gateway.app.openapi()))
            for caller in SIGNED_IN:
                api.cookies[caller], api.csrf[caller] = _sign_in(api, SIGNED_IN[caller])
            try:
                yield api
            finally:
                api.http.close()


@pytest.fixture(scope="module")
def normal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with served_api(tmp_path_factory.mktemp("openapi-normal"), sandbox=False) as api:
        yield api


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with served_api(tmp_path_factory.mktemp("openapi-sandbox"), sandbox=True) as api:
        yield api


# -- sending a case as a caller ----------------------------------------------------------------
def _signature(api: Api, path: str, raw: bytes) -> dict[str, str]:
    """The header that makes ``raw`` a correctly signed webhook body of ``path``."""
    settings_ = api.gateway.settings
    if path == "/webhooks/whatsapp":
        return {SIGNATURE_HEADER: sign_body(settings_.whatsapp_app_secret, raw)}
    if path == "/webhooks/rcs":
        try:
            return {RBM_SIGNATURE_HEADER: sign_data(SANDBOX_RCS_CLIENT_TOKEN, push_data(raw))}
        except ValueError:  # no message.data to sign: sent as it is
            return {}
    if path.startswith("/webhooks/payments/"):
        return {
            PAYMENT_SIGNATURE_HEADER: sign_local_webhook(settings_.payments_webhook_secret, raw)
        }
    return {}


def _bearer(api: Api, path: str) -> dict[str, str]:
    if path.startswith("/sandbox/graph/"):
        return {"Authorization": f"Bearer {api.gateway.settings.whatsapp_access_token}"}
    if path.startswith("/sandbox/rbm/"):
        return {"Authorization": f"Bearer {SANDBOX_RBM_TOKEN}"}
    return {}


def send(api: Api, case: Any, caller: str) -> requests.Response:
    """Send ``case`` as ``caller``; the body is serialized here so it can be signed."""
    kwargs = case.as_transport_kwargs(base_url=api.gateway.url)
    headers = dict(kwargs.pop("headers", None) or {})
    if "json" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        headers.setdefault("Content-Type", "application/json")
    if caller != "stranger":
        path = case.operation.path
        raw = kwargs.get("data")
        if isinstance(raw, str):
            raw = kwargs["data"] = raw.encode()
        if isinstance(raw, bytes):
            headers.update(_signature(api, path, raw))
        headers.update(_bearer(api, path))
        headers["X-CSRF-Token"] = api.csrf[caller]
        kwargs["cookies"] = {**api.cookies[caller], **(kwargs.get("cookies") or {})}
    try:
        response = api.http.request(headers=headers, timeout=30, allow_redirects=False, **kwargs)
    finally:
        api.http.cookies.clear()  # a sign-out answer must not sign the next case out
    if caller in SIGNED_IN and case.operation.path == "/console/logout" and response.is_redirect:
        # The session ended on the server: the next cases get a new one.
        api.cookies[caller], api.csrf[caller] = _sign_in(api, SIGNED_IN[caller])
    return response


def checks_for(operation: Any) -> list[Callable[..., Any]]:
    if operation.path.startswith(DOCUMENTED):
        return [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    return [not_a_server_error]


def fuzz(api: Api, label: str, run: int) -> None:
    operation = api.schema.find_operation_by_label(label)
    assert operation is not None, label
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    checks = checks_for(operation)

    @seed(run)
    @settings(FUZZ, max_examples=EXAMPLES)
    @given(case=strategy, caller=st.sampled_from(CALLERS))
    def test(case: Any, caller: str) -> None:
        CASES[label] += 1
        response = send(api, case, caller)
        case.validate_response(response, checks=checks)

    test()


@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("label", NORMAL_OPERATIONS)
def test_every_operation_of_the_gateway_answers_without_a_5xx(
    normal: Api, label: str, run: int
) -> None:
    fuzz(normal, label, run)


@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("label", SANDBOX_OPERATIONS)
def test_every_sandbox_operation_answers_without_a_5xx(
    sandboxed: Api, label: str, run: int
) -> None:
    fuzz(sandboxed, label, run)


@pytest.mark.parametrize(
    "path",
    [
        "/console/api/chats/99999999999999999999",
        "/console/chats/9223372036854775808",
        "/console/chats/-1/events",
        "/console/media/2147483648",
    ],
)
def test_an_id_no_row_can_have_is_a_422_not_a_database_error(normal: Api, path: str) -> None:
    """Found by the fuzzing: ids past SQLite's (or PostgreSQL's INTEGER) range were a 500."""
    answer = normal.http.get(
        normal.gateway.url + path, cookies=normal.cookies["supervisor"], timeout=30
    )
    normal.http.cookies.clear()
    assert answer.status_code == 422


def test_generated_cases_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """The tally of this file (run last); the budget holds when the whole file ran."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfuzz openapi: {total} generated cases over {len(CASES)} operations")
    if set(CASES) == {*NORMAL_OPERATIONS, *SANDBOX_OPERATIONS}:
        assert total >= BUDGET
