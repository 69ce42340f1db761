"""Spanish (Mexico) entity normalisation for the Rasa engine.

``dates`` turns date phrases into calendar dates, ``amounts`` turns money, installment and
payment-method phrases into values, and ``component`` wires both into the Rasa NLU pipeline as
``bot.nlu.component.SpanishEntityNormalizer``. The modules import nothing from the application
beyond ``bot.clock``, so they run in both virtual envs (``.venv`` and ``.venv-rasa``).

This file holds only :func:`fold`, the one text normalisation every parser here starts from.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fold"]


def _fold_char(char: str) -> str:
    lowered = char.lower()
    if len(lowered) != 1:  # e.g. "İ" lower-cases to two characters: keep offsets intact
        return char
    return unicodedata.normalize("NFD", lowered)[0]


def fold(text: str) -> str:
    """Lower-case ``text`` and strip its accents ("Mañana" → "manana"), keeping its length.

    One output character per input character, so offsets found in the folded text are valid
    offsets into the original (needed for entity ``start``/``end``).
    """
    return "".join(_fold_char(char) for char in text)
