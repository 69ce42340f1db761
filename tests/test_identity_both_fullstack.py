"""``identity.mode: birth_date_then_last4`` through the real model and action server.

A stack of its own (the action server reads its policy at start), with the creditor asking
for both factors: the birth date first, then the last 4 digits of the account; the 4 digits
alone, a forwarded reminder's worth of knowledge, get nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rasa_stack import REPO_ROOT, RasaStack, start_stack

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def both_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    workdir = tmp_path_factory.mktemp("both")
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["identity"]["mode"] = "birth_date_then_last4"
    policy = Path(workdir) / "policy.yml"
    policy.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with start_stack(workdir, ACUERDO_POLICY_FILE=str(policy)) as stack:
        yield stack


def text_of(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def test_the_birth_date_then_the_last_4_digits_verify_and_the_balance_follows(
    both_stack: RasaStack,
) -> None:
    sender = "+525510000031"  # TC-00315678, born 1985-03-15
    asked = text_of(both_stack.say(sender, "cuanto debo"))
    assert "fecha de nacimiento" in asked and "4 dígitos" not in asked
    second = text_of(both_stack.say(sender, "15/03/1985"))
    assert "últimos 4 dígitos" in second and "$" not in second
    done = text_of(both_stack.say(sender, "5678"))
    assert "Ya confirmé tu identidad" in done
    assert "$12,000.00" in done


def test_the_last_4_digits_alone_are_not_an_answer(both_stack: RasaStack) -> None:
    sender = "+525510000032"
    both_stack.say(sender, "cuanto debo")
    replies = text_of(both_stack.say(sender, "5678"))
    replies += text_of(both_stack.say(sender, "dime cuanto es"))
    assert "$" not in replies
    assert "fecha de nacimiento" in replies


def test_a_wrong_last_4_starts_over_from_the_birth_date(both_stack: RasaStack) -> None:
    sender = "+525510000033"
    both_stack.say(sender, "cuanto debo")
    both_stack.say(sender, "15/03/1985")
    wrong = text_of(both_stack.say(sender, "0000"))
    assert "no coinciden" in wrong and "fecha de nacimiento" in wrong and "$" not in wrong
