"""The policy file (CONTRACT section 7): validated at start-up, errors name the key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.policy import Policy, PolicyError, load_policy
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "policy.yml"


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """Write a copy of the shipped policy after ``edit`` changed it."""

    def _write(edit: Callable[[dict[str, Any]], None]) -> Path:
        raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
        edit(raw)
        path = tmp_path / "policy.yml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        return path

    return _write


def test_the_shipped_policy_loads(policy: Policy) -> None:
    assert policy.contact.window.start == time(7, 0)
    assert policy.contact.window.end == time(22, 0)
    assert policy.identity.max_failures == 3
    assert policy.identity.lockout_hours == 24
    assert policy.promises.horizon_days == 30
    assert policy.promises.min_amount_cents == 20_000
    assert policy.settlement.max_rounds == 3
    assert policy.plans.installments_allowed == [2, 3, 4, 6, 9, 12]
    assert policy.plans.min_installment_cents == 30_000


def test_every_days_past_due_falls_in_exactly_one_settlement_bucket(policy: Policy) -> None:
    for days in range(0, 2000):
        matching = [
            b
            for b in policy.settlement.buckets
            if b.min_days_past_due <= days <= b.max_days_past_due
        ]
        assert len(matching) == 1, days


def test_no_bucket_opens_below_its_own_floor(policy: Policy) -> None:
    for bucket in policy.settlement.buckets:
        assert 100 - bucket.discount_pct >= bucket.floor_pct


def test_bucket_for_picks_the_range_containing_the_days(policy: Policy) -> None:
    bucket_30 = policy.settlement.bucket_for(30)
    bucket_31 = policy.settlement.bucket_for(31)
    assert bucket_30 is not None and bucket_31 is not None
    assert (bucket_30.discount_pct, bucket_30.floor_pct) == (Decimal(5), Decimal(90))
    assert (bucket_31.discount_pct, bucket_31.floor_pct) == (Decimal(15), Decimal(75))


def test_every_reminder_names_a_defined_template(policy: Policy) -> None:
    named = {step.template for step in policy.reminders.schedule}
    named |= {policy.reminders.promise_reminder_template, policy.reminders.broken_promise_template}
    assert named <= set(policy.templates)


def test_a_missing_file_is_reported_with_the_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="ACUERDO_POLICY_FILE"):
        load_policy(tmp_path / "no-existe.yml")


def test_a_missing_key_is_named_by_its_path(write_policy: Callable[..., Path]) -> None:
    path = write_policy(lambda raw: raw["promises"].pop("horizon_days"))

    with pytest.raises(PolicyError, match=r"promises\.horizon_days"):
        load_policy(path)


def test_an_unknown_key_is_named_by_its_path(write_policy: Callable[..., Path]) -> None:
    path = write_policy(lambda raw: raw["contact"].update(colour="azul"))

    with pytest.raises(PolicyError, match=r"contact\.colour"):
        load_policy(path)


def test_a_floor_above_the_opening_offer_is_refused(write_policy: Callable[..., Path]) -> None:
    def floor_above_opening(raw: dict[str, Any]) -> None:
        # Opening at 30% off is 70% of the balance, below a 75% floor.
        raw["settlement"]["buckets"][1]["discount_pct"] = 30

    path = write_policy(floor_above_opening)

    with pytest.raises(PolicyError, match=r"settlement\.buckets\.1") as raised:
        load_policy(path)
    assert "floor_pct" in str(raised.value)


def test_a_reminder_naming_an_undefined_template_is_named_by_its_path(
    write_policy: Callable[..., Path],
) -> None:
    path = write_policy(
        lambda raw: raw["reminders"]["schedule"][2].update(template="plantilla_fantasma")
    )

    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert "reminders.schedule.2.template" in message
    assert "plantilla_fantasma" in message


def test_an_undefined_broken_promise_template_is_named(write_policy: Callable[..., Path]) -> None:
    path = write_policy(lambda raw: raw["templates"].pop("seguimiento_promesa_incumplida"))

    with pytest.raises(PolicyError, match=r"reminders\.broken_promise_template"):
        load_policy(path)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw["contact"]["window"].update(start="23:00"), "contact.window"),
        (lambda raw: raw["contact"]["days"].append("dom"), "contact.days.6"),
        (
            lambda raw: raw["plans"].update(installments_allowed=[1, 3]),
            "plans.installments_allowed",
        ),
        (lambda raw: raw["promises"].update(min_amount="doscientos"), "promises.min_amount"),
        (lambda raw: raw["identity"].update(max_failures=0), "identity.max_failures"),
        (lambda raw: raw["payment_codes"].update(clabe_prefix="12"), "payment_codes.clabe_prefix"),
    ],
)
def test_a_bad_value_is_named_by_its_path(
    write_policy: Callable[..., Path], edit: Callable[[dict[str, Any]], None], key: str
) -> None:
    path = write_policy(edit)

    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert key in str(raised.value)


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("contact: [07:00, 22:00\npromises: {horizon_days: 30\n", encoding="utf-8")

    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("- solo\n- una lista\n", encoding="utf-8")

    with pytest.raises(PolicyError, match="Invalid policy"):
        load_policy(path)


def test_the_policy_error_is_one_line(write_policy: Callable[..., Path]) -> None:
    path = write_policy(lambda raw: raw.pop("settlement"))

    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert "settlement" in str(raised.value)
    assert "\n" not in str(raised.value)
