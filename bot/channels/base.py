"""The channel-agnostic vocabulary of the gateway.

An adapter turns its wire format into :class:`InboundMessage` / :class:`StatusUpdate`,
turns a common :class:`OutboundMessage` into one or more :class:`RenderedMessage` (each one
wire message, stored as one outbox row), and sends those. Nothing outside an adapter
knows what a wire body looks like.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

# A quick-reply payload that only reopens a conversation (sent on the re-engagement
# template); the pipeline answers it by releasing the held messages, not through Rasa.
RESUME_PAYLOAD = "acuerdo:resume"


class InboundKind(str, enum.Enum):
    """What an inbound message is, whatever channel it came from."""

    TEXT = "text"
    BUTTON = "button"  # a tap on a reply button, list row or template quick reply
    IMAGE = "image"
    DOCUMENT = "document"
    AUDIO = "audio"
    VIDEO = "video"
    STICKER = "sticker"
    LOCATION = "location"
    REACTION = "reaction"
    CONTACTS = "contacts"
    UNSUPPORTED = "unsupported"
    SYSTEM = "system"  # e.g. "the user changed number": recorded, never answered


# Kept as evidence (a payment receipt, a letter) for an agent to review.
EVIDENCE_KINDS = frozenset({InboundKind.IMAGE, InboundKind.DOCUMENT})
# Sent to the dialogue engine.
CONVERSATIONAL_KINDS = frozenset({InboundKind.TEXT, InboundKind.BUTTON})


@dataclass(frozen=True)
class InboundMessage:
    """One message a person sent, in common form."""

    channel: str
    external_id: str  # the channel's message id: the deduplication key
    sender: str  # E.164
    kind: InboundKind
    profile_name: str | None = None
    text: str | None = None  # typed text, button title, caption
    payload: str | None = None  # the id of the tapped button / list row / quick reply
    media_id: str | None = None
    media_mime: str | None = None
    timestamp: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # channel extras, for the record
    # The channel's own stop signal (RCS UNSUBSCRIBE): an opt-out stored with the message.
    opts_out: bool = False


class SendOutcome(str, enum.Enum):
    """How the outbox must treat a failed send, whatever the channel's error codes."""

    RETRY = "retry"  # rate limits, server errors, timeouts: back off and try again
    WINDOW_CLOSED = "window_closed"  # only a template may go now
    UNDELIVERABLE = "undeliverable"  # never retry this message
    PACE_RECIPIENT = "pace_recipient"  # too many messages to this person: slow down
    HALT = "halt"  # the sending account is blocked or misconfigured: stop everything
    REJECTED = "rejected"  # the channel refused this body; retrying will not help


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery receipt for a message we sent."""

    channel: str
    external_id: str
    status: str  # sent | delivered | read | failed (others are recorded, not ranked)
    timestamp: datetime | None = None
    error_code: str | None = None
    error_title: str | None = None
    outcome: SendOutcome | None = None  # for "failed": what the error means for the outbox


@dataclass
class Delivery:
    """Everything one webhook call carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # short reasons, one per bad item
    ignored: int = 0  # well-formed items that are not for us (other fields, other numbers)


class InvalidDelivery(ValueError):
    """The body is not a delivery of this channel at all; ``reason`` is short and safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Button:
    """One option offered to the person: what they see and what comes back when tapped."""

    title: str
    payload: str
    description: str | None = None


@dataclass(frozen=True)
class TemplateMessage:
    """An approved template (for messages outside a channel's service window)."""

    name: str
    language: str
    params: tuple[str, ...] = ()
    button_payloads: tuple[str, ...] = ()
    preview: str = ""  # the body with its parameters filled in, for the record
    button_titles: tuple[str, ...] = ()  # the approved labels of the quick replies


@dataclass(frozen=True)
class LinkAction:
    """An action the person can take from the message: open a web page or call a number.

    Channels with rich actions (RCS) show a chip; the others rely on the link being in the text.
    """

    title: str
    url: str | None = None  # https://… (the payment page)
    phone: str | None = None  # E.164, for a dial action


@dataclass(frozen=True)
class OutboundMessage:
    """One bot response in common form (text, options, an image, a document, or a template).

    A document (the carta finiquito's PDF) goes by link with ``text`` as its caption;
    channels that cannot attach a file send the text with the link.
    """

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    image_url: str | None = None
    template: TemplateMessage | None = None
    title: str | None = None  # a card title, for channels that draw an image as a card
    actions: tuple[LinkAction, ...] = ()
    document_url: str | None = None  # https://… of a PDF
    document_name: str | None = None  # the file name the person sees


@dataclass(frozen=True)
class RenderedMessage:
    """One wire message ready to send: stored as one outbox row."""

    kind: str  # text | interactive | image | document | card | template
    text: str  # what the person will read, for the record and the console
    body: dict[str, Any]  # the wire body without the recipient
    options: tuple[Button, ...] = ()  # a numbered menu: "3" maps back to options[2]


@dataclass(frozen=True)
class SendResult:
    external_id: str


class SendError(Exception):
    """A send failed; ``outcome`` tells the outbox what to do, ``code`` what to record."""

    def __init__(
        self,
        outcome: SendOutcome,
        code: str,
        detail: str = "",
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{outcome.value} ({code}) {detail}".strip())
        self.outcome = outcome
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


def opaque_answer(status: int, content_type: str | None) -> str:
    """The detail of an error answer that is not JSON (a proxy's HTML page…).

    Its text is not kept: it may quote the request (the number, even the bearer token),
    and the detail goes to the logs.
    """
    return f"HTTP {status} {(content_type or 'without content type').split(';')[0]}, not JSON"


class ChannelAdapter(Protocol):
    """What every channel offers the gateway."""

    name: str
    # Free-form messages only go this long after the person's last message (None: no limit).
    service_window: timedelta | None

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when the webhook's signature over the exact raw body is valid."""
        ...

    def parse_delivery(self, raw_body: bytes) -> Delivery:
        """The messages and statuses of a verified body, or :class:`InvalidDelivery`."""
        ...

    def render(self, message: OutboundMessage) -> list[RenderedMessage]:
        """The wire messages for one response, within the channel's limits."""
        ...

    async def send(
        self, recipient: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> SendResult:
        """Send one rendered body to ``recipient`` (E.164), or raise :class:`SendError`.

        ``idempotency_key`` is stable for one outbox row across retries; channels that
        deduplicate sends (RBM's ``messageId``) use it, the others ignore it.
        """
        ...

    async def mark_read(self, external_id: str, recipient: str | None = None) -> None:
        """Tell ``recipient`` their message ``external_id`` was read (best effort)."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...
