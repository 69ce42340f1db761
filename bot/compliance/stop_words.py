"""Stop words: the messages that opt a number out, recognised by the gateway itself.

An opt-out must never depend on the dialogue: the gateway reads every inbound text for
these words before anything can skip it (an agent holding the chat, a flood, Rasa down)
and records the opt-out with the message (CONTRACT section 6, rule 2). Free-form requests
("ya no quiero que me contacten") still reach Rasa's ``opt_out`` intent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# A whole message that is one of these (case, accents, punctuation and emoji aside).
STOP_MESSAGES = frozenset(
    {
        "baja",
        "alto",
        "stop",
        "unsubscribe",
        "darme de baja",
        "dame de baja",
        "dar de baja",
        "de baja",
        "cancelar",
        "cancelar suscripcion",
    }
)
# A message that contains one of these phrases.
STOP_PHRASES = (
    "ya no me escriban",
    "ya no me escribas",
    "ya no me manden mensajes",
    "no me vuelvan a escribir",
    "dejen de escribirme",
    "no me contacten",
)

_NOT_WORD = re.compile(r"[^a-z0-9ñ ]+")


def normalise(text: str) -> str:
    """Lower case, no accents (ñ kept), letters, digits and single spaces only."""
    lowered = text.casefold().replace("ñ", "\0")
    stripped = "".join(
        ch for ch in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(ch)
    ).replace("\0", "ñ")
    return " ".join(_NOT_WORD.sub(" ", stripped).split())


def is_stop_request(
    text: str | None, *, words: Iterable[str] = (), phrases: Iterable[str] = ()
) -> bool:
    """True when ``text`` asks, in so many words, for no more messages: a built-in stop word
    or phrase, or one of the policy's own (``contact.stop_words`` / ``stop_phrases``)."""
    if not text:
        return False
    said = normalise(text)
    if said in STOP_MESSAGES or said in {normalise(word) for word in words}:
        return True
    own = (normalise(phrase) for phrase in phrases)
    return any(phrase in said for phrase in STOP_PHRASES) or any(p and p in said for p in own)
