"""One action call's view of the world: settings, clock, policy, a DB session, the sender."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings, get_settings
from bot.db.engine import session_scope
from bot.db.models import Account, Conversation
from bot.domain.conversations import get_or_create_conversation, is_verified
from bot.domain.errors import InvalidPhone
from bot.domain.phones import normalize_phone
from bot.policy import Policy, cached_policy


@dataclass
class Turn:
    settings: Settings
    clock: Clock
    policy: Policy
    session: Session
    conversation: Conversation | None
    account: Account | None

    @property
    def conversation_id(self) -> int | None:
        return self.conversation.id if self.conversation else None

    @property
    def verified_account(self) -> Account:
        """The account of a verified sender (inside a :class:`GatedAction`)."""
        if self.account is None:
            raise LookupError("no account for this sender")
        return self.account


def sender_phone(tracker: Tracker) -> str | None:
    """The debtor's phone: the sender id the gateway gave Rasa (an E.164 number).

    Never the message metadata: a turn is about the conversation Rasa keeps for that
    sender, and a phone in the metadata could name anyone else's account.
    """
    if not tracker.sender_id:
        return None
    try:
        return normalize_phone(str(tracker.sender_id))
    except InvalidPhone:
        return None


def sender_channel(tracker: Tracker) -> str:
    latest = (tracker.latest_message or {}).get("metadata") or {}
    return str(latest.get("channel") or "whatsapp")


@contextmanager
def open_turn(tracker: Tracker) -> Iterator[Turn]:
    """A committed-on-success unit of work for one action call."""
    settings = get_settings()
    clock = settings.clock()
    policy = cached_policy(settings.policy_file)
    phone = sender_phone(tracker)
    with session_scope(settings.database_url) as session:
        conversation = (
            get_or_create_conversation(session, clock, sender_channel(tracker), phone)
            if phone
            else None
        )
        account = (
            session.get(Account, conversation.account_id)
            if conversation is not None and conversation.account_id is not None
            else None
        )
        yield Turn(settings, clock, policy, session, conversation, account)


def verified(turn: Turn, tracker: Tracker) -> bool:
    """Both the dialogue and the ledger agree the sender proved who they are."""
    return bool(
        tracker.get_slot("verified")
        and turn.conversation is not None
        and turn.account is not None
        and is_verified(turn.conversation, turn.clock, turn.policy)
    )


def last_bot_response(tracker: Tracker) -> str | None:
    """The name of the bot's last action before the latest user message."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            seen_user = True
        elif seen_user and event.get("event") == "action" and event.get("name") != "action_listen":
            return str(event.get("name"))
    return None


def refuse_unverified(tracker: Tracker) -> list[EventType]:
    """Defence in depth: a disclosure reached without verification starts verification."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    # The dialogue may still believe an ended verification (expired, wrong person, an
    # agent ended it): the ledger wins, and the person answers the question again.
    return [
        SlotSet("verified", False),
        SlotSet("pending_request", intent),
        FollowupAction("verification_form"),
    ]


class TurnAction(Action, ABC):
    """An action that works on one :class:`Turn` (a committed unit of work)."""

    action_name: ClassVar[str]

    def name(self) -> str:
        return self.action_name

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            return self.respond(turn, dispatcher, tracker)

    @abstractmethod
    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        """The action's work, inside the turn's transaction."""


class GatedAction(TurnAction):
    """An action that discloses account data: it answers only a verified sender.

    The dialogue's rules already send unverified senders to verification first; this
    is the second, independent check, in one place for every disclosing action.
    """

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            if not verified(turn, tracker) or turn.account is None:
                return refuse_unverified(tracker)
            return self.respond(turn, dispatcher, tracker)
