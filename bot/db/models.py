"""The ledger: every table of Acuerdo (SQLAlchemy 2.0 declarative style).

Money is integer centavos. Datetimes are aware UTC. Phone numbers are E.164.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class AccountStatus(str, enum.Enum):
    ACTIVE = "active"
    PAID = "paid"  # balance paid in full
    SETTLED = "settled"  # closed by a settlement agreement (quita)


class LetterKind(str, enum.Enum):
    PAID_IN_FULL = "paid_in_full"  # the balance reached zero through payments
    SETTLEMENT = "settlement"  # a settlement agreement (quita) was completed


class PromiseStatus(str, enum.Enum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


class OfferKind(str, enum.Enum):
    SETTLEMENT = "settlement"
    PLAN = "plan"


class OfferStatus(str, enum.Enum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COUNTERED = "countered"
    EXPIRED = "expired"


class AgreementStatus(str, enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    BROKEN = "broken"
    CANCELLED = "cancelled"


class PaymentCodeStatus(str, enum.Enum):
    ACTIVE = "active"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Channel(str, enum.Enum):
    WHATSAPP = "whatsapp"
    RCS = "rcs"
    SMS = "sms"


class ConversationState(str, enum.Enum):
    BOT = "bot"
    QUEUED = "queued"
    AGENT = "agent"
    CLOSED = "closed"


class Direction(str, enum.Enum):
    IN = "in"
    OUT = "out"


class Debtor(Base):
    __tablename__ = "debtors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str | None] = mapped_column(String(64))
    deceased: Mapped[bool] = mapped_column(Boolean, default=False)
    bankrupt: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    accounts: Mapped[list[Account]] = relationship(back_populates="debtor")
    contact_points: Mapped[list[ContactPoint]] = relationship(back_populates="debtor")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)  # CSV `account_id`
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtors.id"), index=True)
    creditor: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(String(200))
    principal_cents: Mapped[int] = mapped_column(BigInteger)
    interest_cents: Mapped[int] = mapped_column(BigInteger)
    fees_cents: Mapped[int] = mapped_column(BigInteger)
    minimum_payment_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="MXN")
    due_date: Mapped[date] = mapped_column(Date)
    # The date the creditor computed principal/interest/fees (the last import).
    amounts_as_of: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.ACTIVE.value)
    dispute_open: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    debtor: Mapped[Debtor] = relationship(back_populates="accounts")
    payments: Mapped[list[Payment]] = relationship(back_populates="account")
    promises: Mapped[list[Promise]] = relationship(back_populates="account")
    agreements: Mapped[list[Agreement]] = relationship(back_populates="account")


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("account_id", "reference", name="uq_payments_account_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime]
    reference: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(32))  # import | provider:local | agent
    provider_event_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    payment_code_id: Mapped[int | None] = mapped_column(ForeignKey("payment_codes.id"))
    created_at: Mapped[datetime]

    account: Mapped[Account] = relationship(back_populates="payments")


class Promise(Base):
    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    promised_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=PromiseStatus.PENDING.value)
    made_by: Mapped[str] = mapped_column(String(100))  # "bot" or "agent:<username>"
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="promises")


class Offer(Base):
    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # OfferKind
    total_cents: Mapped[int] = mapped_column(BigInteger)  # what the debtor would pay in all
    floor_cents: Mapped[int] = mapped_column(BigInteger)  # lowest the policy allows
    installments: Mapped[int] = mapped_column(Integer, default=1)
    installment_cents: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[date] = mapped_column(Date)
    round: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.OFFERED.value)
    made_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Agreement(Base):
    __tablename__ = "agreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # OfferKind
    total_cents: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[date] = mapped_column(Date)  # last day to complete it
    status: Mapped[str] = mapped_column(String(16), default=AgreementStatus.ACTIVE.value)
    approved_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="agreements")
    installments: Mapped[list[Installment]] = relationship(
        back_populates="agreement", order_by="Installment.number"
    )


class Installment(Base):
    __tablename__ = "installments"
    __table_args__ = (UniqueConstraint("agreement_id", "number", name="uq_installments_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)

    agreement: Mapped[Agreement] = relationship(back_populates="installments")


class PaymentCode(Base):
    __tablename__ = "payment_codes"
    __table_args__ = (UniqueConstraint("provider", "reference", name="uq_payment_codes_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    provider: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))  # bank_ref | spei | oxxo | card (link)
    reference: Mapped[str] = mapped_column(String(64))  # what the provider's webhooks name
    clabe: Mapped[str | None] = mapped_column(String(18))
    # A processor's own number for the cashier (Stripe's OXXO voucher), when not the reference
    voucher_number: Mapped[str | None] = mapped_column(String(64))
    hosted_url: Mapped[str | None] = mapped_column(String(500))  # the processor's voucher page
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="MXN")
    concept: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(300), unique=True)
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=PaymentCodeStatus.ACTIVE.value)
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]


class ProcessorCustomer(Base):
    """The customer a payment processor keeps for a debtor (Stripe: one CLABE for good)."""

    __tablename__ = "processor_customers"
    __table_args__ = (
        UniqueConstraint("provider", "debtor_id", name="uq_processor_customers_debtor"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtors.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class SettlementLetter(Base):
    """The carta finiquito of a paid-off account: issued once, verifiable by its code.

    ``details`` is what the letter says (names, masked account, payments, the agreement),
    frozen at issuance so the page and the document never disagree with what was issued.
    ``pdf`` is the document of record, written once when first rendered and never again
    (``bot/documents/letters.py``).
    """

    __tablename__ = "settlement_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # LetterKind
    verification_code: Mapped[str] = mapped_column(String(16), unique=True)  # Crockford base32
    total_paid_cents: Mapped[int] = mapped_column(BigInteger)
    paid_off_at: Mapped[datetime]
    issued_at: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)


class ProcessorEvent(Base):
    """A payment processor's event as received, and what it did (``bot/payments/event_log.py``)."""

    __tablename__ = "processor_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_processor_events_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # paid | expired | canceled | refunded
    reference: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))  # EventOutcome
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    received_at: Mapped[datetime] = mapped_column(index=True)


class ContactPoint(Base):
    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_contact_points_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    debtor_id: Mapped[int | None] = mapped_column(ForeignKey("debtors.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # Channel
    # E.164; looked up alone too (which debtor is this number, whatever the channel)
    address: Mapped[str] = mapped_column(String(32), index=True)
    preferred: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    wrong_number_at: Mapped[datetime | None]
    do_not_contact_reason: Mapped[str | None] = mapped_column(String(200))
    # The channel said this address cannot receive (RBM 404: not RCS-capable; WhatsApp
    # 131026). Company-started messages skip it until the person writes on that channel.
    unreachable_at: Mapped[datetime | None]
    unreachable_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    debtor: Mapped[Debtor | None] = relationship(back_populates="contact_points")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_conversations_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(32))  # the sender, E.164
    debtor_id: Mapped[int | None] = mapped_column(ForeignKey("debtors.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    state: Mapped[str] = mapped_column(String(16), default=ConversationState.BOT.value)
    verified_at: Mapped[datetime | None]
    verification_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]  # opens WhatsApp's 24-hour window
    handoff_reason: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("console_users.id"))
    queued_at: Mapped[datetime | None]  # when it last entered the agent queue (waiting time)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id"
    )


class Message(Base):
    """One inbound or outbound message; inbound rows are the durable inbox, outbound the outbox."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "external_id", name="uq_messages_external"),
        Index("ix_messages_status_next", "direction", "status", "next_attempt_at"),
        # A claim asks for the earliest unfinished row of each candidate's conversation: by
        # conversation alone, that read the conversation's whole history (migration 0008).
        Index("ix_messages_conversation_unfinished", "conversation_id", "direction", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(3))  # Direction
    external_id: Mapped[str | None] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(100))  # debtor | bot | agent:<username> | system
    kind: Mapped[str] = mapped_column(String(32))  # text, interactive, image, template, ...
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class EarlyStatus(Base):
    """A delivery receipt that arrived before its send was recorded.

    WhatsApp can post "sent" or "failed" for a message a few milliseconds after accepting
    it, before the outbox has committed the provider's id. The receipt is parked here and
    applied when the outbox records that id (``bot/conversation/inbox.py``).
    """

    __tablename__ = "early_statuses"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", "status", name="uq_early_statuses_receipt"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_title: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(index=True)


class ConsoleUser(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # agent | supervisor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class ConsoleSession(Base):
    """A signed-in browser: the session cookie names it; signing out deletes it, and so do a
    new password and deactivation (every session of the user)."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the secret
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ConversationNote(Base):
    """An agent's internal note on a conversation: never sent to the debtor."""

    __tablename__ = "conversation_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))  # agent:<username>
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))  # bot | agent:<username> | system | import
    action: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CampaignSendStatus(str, enum.Enum):
    SENT = "sent"  # queued in the outbox (its delivery status is on the message row)
    DELAYED = "delayed"  # outside hours, a holiday or above the cap: retried on later runs
    SUPPRESSED = "suppressed"  # a compliance rule forbids it (reason); re-checked on later runs
    SKIPPED = "skipped"  # the campaign chose not to send (a pending promise, an agent chat…)


class CampaignSend(Base):
    """One reminder step of one account: sent at most once (the unique key), or why not."""

    __tablename__ = "campaign_sends"
    __table_args__ = (
        UniqueConstraint("account_id", "step", "scheduled_for", name="uq_campaign_sends_step"),
        Index("ix_campaign_sends_status_sent_at", "status", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))  # due-3, due+0, …, promise_reminder, …
    segment: Mapped[str] = mapped_column(String(16))  # preventive | early | late | promise
    template: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[date] = mapped_column(Date)  # the step's day (debtor local)
    promise_id: Mapped[int | None] = mapped_column(ForeignKey("promises.id"))
    contact_point_id: Mapped[int | None] = mapped_column(ForeignKey("contact_points.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    status: Mapped[str] = mapped_column(String(16))  # CampaignSendStatus
    reason: Mapped[str | None] = mapped_column(String(64))
    delay_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
