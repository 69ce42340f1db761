"""WhatsApp Cloud API error codes and what the outbox does about each."""

from __future__ import annotations

from bot.channels.base import SendOutcome

# Graph error codes → what the outbox does (https://developers.facebook.com/docs/whatsapp/
# cloud-api/support/error-codes/). Anything not listed: 5xx/429 retry, other 4xx rejected.
ERROR_OUTCOMES: dict[int, SendOutcome] = {
    131047: SendOutcome.WINDOW_CLOSED,  # more than 24 hours since the person's last message
    131026: SendOutcome.UNDELIVERABLE,  # not a WhatsApp user, old app, or blocked us
    131021: SendOutcome.UNDELIVERABLE,  # recipient cannot be the sender
    131051: SendOutcome.REJECTED,  # unsupported message type
    131056: SendOutcome.PACE_RECIPIENT,  # too many messages to this pair of numbers
    368: SendOutcome.HALT,  # temporarily blocked for policy violations
    131031: SendOutcome.HALT,  # business account locked
    190: SendOutcome.HALT,  # access token expired or revoked
    10: SendOutcome.HALT,  # permission denied
    4: SendOutcome.RETRY,  # application request limit
    80007: SendOutcome.RETRY,  # WABA rate limit
    130429: SendOutcome.RETRY,  # throughput limit
    131048: SendOutcome.RETRY,  # spam rate limit
    131000: SendOutcome.RETRY,  # something went wrong
    131016: SendOutcome.RETRY,  # service unavailable
    133004: SendOutcome.RETRY,  # server temporarily unavailable
    2: SendOutcome.RETRY,  # API service
    1: SendOutcome.RETRY,  # API unknown
}
