"""Phone conflicts of a portfolio import: a row may not rewrite the person on its phone.

The debtor of a row is found by phone (one person may hold several accounts). A row whose
``full_name`` or ``birth_date`` differs from the debtor already on that phone — in the
database, or on an earlier line of the same chunk — would silently rewrite that person's name
and the birth date identity verification asks for. It is rejected instead, naming its line;
the rest of the file still loads and nothing of the existing debtor changes. Names are
compared without case, accents or extra spaces ("LAURA MENDEZ" is "Laura Méndez").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Channel, ContactPoint, Debtor
from bot.domain.debtors import AccountData
from bot.importers.report import RowError


@dataclass(frozen=True)
class Owner:
    """Who is on a phone: their name and birth date, and the line that put them there (None:
    the database)."""

    full_name: str
    birth_date: date
    line: int | None = None


def _folded(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


def phone_owners(session: Session, phones: Iterable[str]) -> dict[str, Owner]:
    """The debtors already on ``phones`` (E.164, their WhatsApp contact points)."""
    wanted = set(phones)
    if not wanted:
        return {}
    rows = session.execute(
        select(ContactPoint.address, Debtor.full_name, Debtor.birth_date)
        .join(Debtor, Debtor.id == ContactPoint.debtor_id)
        .where(
            ContactPoint.channel == Channel.WHATSAPP.value,
            ContactPoint.address.in_(wanted),
        )
    )
    return {address: Owner(name, born) for address, name, born in rows}


def phone_conflict(owners: dict[str, Owner], line: int, data: AccountData) -> RowError | None:
    """Why the row on ``line`` may not load (its phone is someone else's), or None.

    A row that loads becomes the owner of a phone nobody had yet (in ``owners``)."""
    owner = owners.get(data.phone)
    if owner is None:
        owners[data.phone] = Owner(data.full_name, data.birth_date, line)
        return None
    differs = [
        column
        for column, same in (
            ("full_name", _folded(owner.full_name) == _folded(data.full_name)),
            ("birth_date", owner.birth_date == data.birth_date),
        )
        if not same
    ]
    if not differs:
        return None
    what = " and ".join(differs)
    if owner.line is None:
        reason = (
            f"this phone already belongs to a debtor with a different {what}; "
            "the row was not loaded and that debtor was not changed"
        )
    else:
        reason = f"this phone is on line {owner.line} with a different {what}"
    return RowError(line, "phone", reason)
