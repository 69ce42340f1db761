"""Channel adapters: each knows one wire format (parse inbound, render outbound, send).

The rest of the gateway speaks only the common types of :mod:`bot.channels.base`.
"""

from bot.channels.base import (
    Button,
    ChannelAdapter,
    Delivery,
    InboundKind,
    InboundMessage,
    InvalidDelivery,
    LinkAction,
    OutboundMessage,
    RenderedMessage,
    SendError,
    SendOutcome,
    SendResult,
    StatusUpdate,
    TemplateMessage,
)

__all__ = [
    "Button",
    "ChannelAdapter",
    "Delivery",
    "InboundKind",
    "InboundMessage",
    "InvalidDelivery",
    "LinkAction",
    "OutboundMessage",
    "RenderedMessage",
    "SendError",
    "SendOutcome",
    "SendResult",
    "StatusUpdate",
    "TemplateMessage",
]
