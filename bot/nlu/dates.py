"""Spanish (Mexico) date phrases to calendar dates, resolved against a given ``today``.

How :func:`parse_date` reads a phrase:

1. :func:`bot.nlu.fold` (lower case, no accents), punctuation out, :data:`REWRITES` (``primero``
   → 1, accents ``text_to_num`` needs), spelled numbers to digits (``alpha2digit``), then
   :data:`NOISE` out (time of day, "mismo", "sin falta").
2. :data:`RULES`, a table of (pattern, resolver) for what dateparser gets wrong or cannot know:
   quincena, fin de mes, "el 20", weekdays after an article, "pasado mañana"... The first rule
   whose pattern is found and resolves wins.
3. Otherwise :data:`FILLERS` are stripped and dateparser (always ``languages=['es']``) tries.

Direction. ``allow_past=False`` reads a promise: year-less and relative phrases resolve on or after
today ("15 de enero" said in November → next January) and nothing before today is ever returned
("ayer", or "15/03/1985", give ``None``). ``allow_past=True`` reads a report of the past:
ambiguous phrases resolve to their most recent occurrence ("pagué el lunes" → last Monday, "el 15"
→ the last 15th on or before today); unambiguous ones keep their meaning ("mañana" is tomorrow).

Weekdays. "el viernes", "el próximo viernes", "el viernes que viene": the next Friday strictly
after today (said on a Friday it means next week's). "este viernes", "el viernes de esta semana":
today when today is Friday. "hoy" (also "hoy viernes") is always today.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import dateparser
from dateutil.relativedelta import relativedelta
from text_to_num import alpha2digit

from bot.nlu import fold

__all__ = [
    "DateMention",
    "find_dates",
    "has_explicit_year",
    "parse_date",
    "reports_past_action",
    "speaks_of_past",
]

WEEKDAYS = {
    "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5, "domingo": 6,
}  # fmt: skip
MONTHS = {
    "enero": 1, "ene": 1, "febrero": 2, "feb": 2, "marzo": 3, "mar": 3, "abril": 4, "abr": 4,
    "mayo": 5, "may": 5, "junio": 6, "jun": 6, "julio": 7, "jul": 7, "agosto": 8, "ago": 8,
    "septiembre": 9, "setiembre": 9, "sept": 9, "sep": 9, "set": 9, "octubre": 10, "oct": 10,
    "noviembre": 11, "nov": 11, "diciembre": 12, "dic": 12,
}  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


WEEKDAY = _alternation(WEEKDAYS)
MONTH = _alternation(MONTHS)
NEXT_WEEK = r"(?:(?:proxima|siguiente|otra) semana|semana (?:que (?:entra|viene)|entrante|proxima))"
UNIT = r"(?P<unit>dias?|semanas?|mes(?:es)?|anos?)"

# Folded text → text that text_to_num and the rules can read. Applied in order, before numbers.
REWRITES: tuple[tuple[str, str], ...] = (
    (r"[¿?¡!,;\"'()]|(?<!\d)\.|\.(?!\d)", " "),
    (r"\b(?:1ro|1ero|1o|primero|primer dia)\b", "1"),
    (r"\bveintiun\b", "veintiún"),  # alpha2digit needs these three accents
    (r"\bveintidos\b", "veintidós"),
    (r"\bveintitres\b", "veintitrés"),
    (r"\b(?:anteayer|antes de ayer|antier|antiayer)\b", "antier"),
    (r"\b(?:ahorita|ahora|al rato)\b", "hoy"),
    (r"\b(?:setiembre)\b", "septiembre"),
)
# Words that carry no date, removed after numbers are read (so "a las tres" is caught too).
NOISE: tuple[str, ...] = (
    r"\b(?:en|por|de|a) la (?:manana|tarde|noche|madrugada)\b",
    r"\b(?:a|como a|antes de) las? \d{1,2}(?::\d{2})?\s*(?:am|pm|hrs?|horas)?\b",
    r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|hrs)\b",
    r"\b(?:mismo|misma|temprano|sin falta|seguro|a mas tardar|lo mas tardar)\b",
)
# Stripped before the bare-number rule and before dateparser, which chokes on articles.
FILLERS = r"\b(?:el|la|los|las|lo|para|hasta|a|antes del?|dia|proximo|proxima|este|esta|te pago)\b"


Resolver = Callable[[re.Match[str], date, bool], "date | None"]


class Rule(NamedTuple):
    """A date phrase the wrapper reads itself: the first rule found in the text resolves it."""

    pattern: re.Pattern[str]
    resolve: Resolver


# ---------------------------------------------------------------------------------------------
# Calendar arithmetic


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest(
    candidates: Iterable[date | None], today: date, past: bool, *, strict: bool = False
) -> date | None:
    """The first candidate on/after today (or, when ``past``, the last on/before today)."""
    dates = [d for d in candidates if d is not None]
    if past:
        return max((d for d in dates if d < today or (d == today and not strict)), default=None)
    return min((d for d in dates if d > today or (d == today and not strict)), default=None)


def _months_around(today: date, months: int = 14) -> list[tuple[int, int]]:
    first = today.replace(day=1)
    return [
        ((m := first + relativedelta(months=k)).year, m.month) for k in range(-months, months + 1)
    ]


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _full_year(text: str, today: date) -> int:
    """Four digits as written; two digits in the century that keeps them at most 10 years ahead."""
    year = int(text)
    if len(text) == 4:
        return year
    return 2000 + year if 2000 + year <= today.year + 10 else 1900 + year


def _yearly(today: date, month: int, day: int, past: bool) -> date | None:
    years = range(today.year - 8, today.year + 9)  # wide enough for 29 February
    return _nearest((_valid(y, month, day) for y in years), today, past)


def _monthly(today: date, day: int, past: bool) -> date | None:
    return _nearest((_valid(y, m, day) for y, m in _months_around(today)), today, past)


def _weekday(today: date, weekday: int, past: bool, *, strict: bool = True) -> date | None:
    days = (today + timedelta(days=k) for k in range(-14, 15))
    return _nearest((d for d in days if d.weekday() == weekday), today, past, strict=strict)


def _monday_of_week(day: date) -> date:
    return day - timedelta(days=day.weekday())


# ---------------------------------------------------------------------------------------------
# Resolvers: (match, today, past) → date | None


def _explicit_or_yearly(m: re.Match[str], today: date, past: bool, month: int) -> date | None:
    day = int(m["day"])
    if m["year"]:
        return _valid(_full_year(m["year"], today), month, day)
    return _yearly(today, month, day, past)


def _numeric(m: re.Match[str], today: date, past: bool) -> date | None:
    return _explicit_or_yearly(m, today, past, int(m["month"]))


def _named_month(m: re.Match[str], today: date, past: bool) -> date | None:
    return _explicit_or_yearly(m, today, past, MONTHS[m["month"]])


def _iso(m: re.Match[str], today: date, past: bool) -> date | None:
    return _valid(int(m["year"]), int(m["month"]), int(m["day"]))


def _month_start(m: re.Match[str], today: date, past: bool) -> date | None:
    wanted = MONTHS.get(m["month"] or "")
    starts = (date(y, mo, 1) for y, mo in _months_around(today) if wanted in (None, mo))
    return _nearest(starts, today, past, strict=wanted is None)


def _month_end_rule(m: re.Match[str], today: date, past: bool) -> date | None:
    wanted = MONTHS.get(m["month"] or "")
    ends = (_month_end(y, mo) for y, mo in _months_around(today) if wanted in (None, mo))
    return _nearest(ends, today, past)


def _quincena(m: re.Match[str], today: date, past: bool) -> date | None:
    paydays = [
        d for y, mo in _months_around(today, 2) for d in (date(y, mo, 15), _month_end(y, mo))
    ]
    return _nearest(paydays, today, past)


def _weekend(m: re.Match[str], today: date, past: bool) -> date | None:
    if today.weekday() == 6 and not past:
        return today
    return _weekday(today, 5, past, strict=False)


def _shift(days: int) -> Resolver:
    return lambda m, today, past: today + timedelta(days=days)


def _relative(m: re.Match[str], today: date, past: bool) -> date | None:
    n = int(m["n"]) * (-1 if m["sign"] == "hace" else 1)
    steps = {
        "dia": relativedelta(days=n),
        "sem": relativedelta(weeks=n),
        "mes": relativedelta(months=n),
        "ano": relativedelta(years=n),
    }
    return today + steps[m["unit"][:3]]


def _weekday_next_week(m: re.Match[str], today: date, past: bool) -> date | None:
    return _monday_of_week(today) + timedelta(days=7 + WEEKDAYS[m["weekday"]])


def _weekday_past(m: re.Match[str], today: date, past: bool) -> date | None:
    return _weekday(today, WEEKDAYS[m["weekday"]], True)


def _weekday_this_week(m: re.Match[str], today: date, past: bool) -> date | None:
    return _weekday(today, WEEKDAYS[m["weekday"] or m["weekday2"]], past, strict=False)


def _weekday_next(m: re.Match[str], today: date, past: bool) -> date | None:
    return _weekday(today, WEEKDAYS[m["weekday"]], past)


def _next_monday(m: re.Match[str], today: date, past: bool) -> date | None:
    return _monday_of_week(today) + timedelta(days=7)


def _last_monday(m: re.Match[str], today: date, past: bool) -> date | None:
    return _monday_of_week(today) - timedelta(days=7)


def _next_month(m: re.Match[str], today: date, past: bool) -> date | None:
    return today.replace(day=1) + relativedelta(months=1)


def _day_of_month(m: re.Match[str], today: date, past: bool) -> date | None:
    day = int(m["day"])
    return _monthly(today, day, past) if 1 <= day <= 31 else None


def _rule(pattern: str, resolve: Resolver) -> Rule:
    return Rule(re.compile(pattern), resolve)


_YEAR = r"(?:\s+(?:de|del)?\s*(?P<year>(?:19|20)\d{2}))?"
_DAY = r"(?P<day>\d{1,2})º?"

RULES: tuple[Rule, ...] = (
    _rule(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b", _iso),
    _rule(rf"\b{_DAY}[/-](?P<month>\d{{1,2}})(?:[/-](?P<year>\d{{4}}|\d{{2}}))?\b", _numeric),
    _rule(rf"\b{_DAY}\s*(?:de\s+|-)?(?P<month>{MONTH})\b{_YEAR}", _named_month),
    _rule(rf"\b(?P<month>{MONTH})\s+{_DAY}\b{_YEAR}", _named_month),
    _rule(
        rf"\b(?:principios?|inicios?|comienzos?) de(?:l)?\s+(?:mes|(?P<month>{MONTH}))\b",
        _month_start,
    ),
    _rule(r"\bfin(?:es)? de semana\b", _weekend),
    _rule(
        rf"\b(?:fin|fines|final|finales|ultimo dia) de(?:l)?\s+(?:mes|(?P<month>{MONTH}))\b",
        _month_end_rule,
    ),
    _rule(r"\bquincena\b", _quincena),
    _rule(rf"\b(?P<sign>en|dentro de|de aqui a|hace)\s+(?P<n>\d+)\s+{UNIT}\b", _relative),
    _rule(r"\bpasado manana\b", _shift(2)),
    _rule(r"\bantier\b", _shift(-2)),
    _rule(r"\bayer\b", _shift(-1)),
    _rule(r"\bmanana\b", _shift(1)),
    _rule(r"\bhoy\b", _shift(0)),
    _rule(rf"\b(?P<weekday>{WEEKDAY}) de la {NEXT_WEEK}", _weekday_next_week),
    _rule(rf"\b(?P<weekday>{WEEKDAY}) pasado\b", _weekday_past),
    _rule(
        rf"\b(?:este (?P<weekday>{WEEKDAY})|(?P<weekday2>{WEEKDAY}) de esta semana)\b",
        _weekday_this_week,
    ),
    _rule(rf"\b(?P<weekday>{WEEKDAY})\b", _weekday_next),
    _rule(rf"\b{NEXT_WEEK}\b", _next_monday),
    _rule(r"\bsemana pasada\b", _last_monday),
    _rule(r"\b(?:(?:proximo|siguiente) mes|mes (?:que (?:entra|viene)|entrante))\b", _next_month),
    _rule(rf"\bdia\s+{_DAY}(?!\d)", _day_of_month),
    _rule(
        rf"\bel\s+{_DAY}(?![\d/.,:%-])(?!\s*(?:por ciento|pesos|mil|k\b|pagos?|mes|dias?))",
        _day_of_month,
    ),
)
BARE_DAY = re.compile(rf"^\s*{_DAY}\s*$")


# ---------------------------------------------------------------------------------------------
# Public API


def _normalise(text: str) -> str:
    folded = fold(text)
    for pattern, replacement in REWRITES:
        folded = re.sub(pattern, replacement, folded)
    folded = alpha2digit(folded, "es", threshold=0)
    for pattern in NOISE:
        folded = re.sub(pattern, " ", folded)
    return re.sub(r"\s+", " ", folded).strip()


def _plausible(day: date | None, today: date, allow_past: bool) -> date | None:
    if day is None or not 1900 <= day.year <= today.year + 10:
        return None
    if day < today and not allow_past:
        return None
    return day


def _with_dateparser(text: str, today: date, allow_past: bool) -> date | None:
    if not re.search(r"[a-z]{3}", text):  # dateparser reads "15.12" or "500" as nonsense
        return None
    parsed = dateparser.parse(
        text,
        languages=["es"],
        settings={
            "PREFER_DATES_FROM": "past" if allow_past else "future",
            "RELATIVE_BASE": datetime.combine(today, time(12, 0)),
            "DATE_ORDER": "DMY",
        },
    )
    return parsed.date() if parsed else None


def parse_date(text: str, today: date, *, allow_past: bool = False) -> date | None:
    """The date a Spanish phrase names, resolved against ``today``; ``None`` if it names none.

    See the module docstring for the direction rules (``allow_past``).
    """
    normalised = _normalise(text)
    for rule in RULES:
        match = rule.pattern.search(normalised)
        if match and (found := rule.resolve(match, today, allow_past)) is not None:
            return _plausible(found, today, allow_past)
    stripped = re.sub(r"\s+", " ", re.sub(FILLERS, " ", normalised)).strip()
    if match := BARE_DAY.match(stripped):
        return _plausible(_day_of_month(match, today, allow_past), today, allow_past)
    if not stripped:
        return None
    return _plausible(_with_dateparser(stripped, today, allow_past), today, allow_past)


# Phrases that put a date in the past by themselves, and verbs that report a past payment.
PAST_DATE_WORDS = re.compile(
    r"\b(?:ayer|antier|anteayer|antiayer|antes de ayer|hace \w+ (?:dias?|semanas?|mes(?:es)?|anos?)"
    rf"|(?:{WEEKDAY}|semana|mes|quincena) pasad[oa])\b"
)
PAST_VERBS = re.compile(
    r"\b(?:pague|pagamos|deposite|depositamos|transferi|transferimos|abone|liquide|cubri|naci"
    r"|nacio|nacimiento|cumpleanos|hice el (?:pago|deposito)|ya (?:\w+ )?(?:pague|hice|quedo))\b"
)
# "que le pague", "cuando deposite": subjunctive, a future payment, once accents are gone.
SUBJUNCTIVE = re.compile(
    r"\b(?:que|cuando|cuanto|si|para que)\s+(?:(?:le|les|lo|la|te|se|me)\s+)?"
    r"(?:pague|deposite|abone|liquide)\b"
)
ACCENTED_PAST = re.compile(r"\b(?:pagué|deposité|aboné|liquidé)")


def reports_past_action(text: str) -> bool:
    """Whether ``text`` tells of something done ("ya pagué", "deposité", "nací")."""
    if ACCENTED_PAST.search(text.lower()):
        return True
    return bool(PAST_VERBS.search(SUBJUNCTIVE.sub(" ", fold(text))))


def speaks_of_past(text: str) -> bool:
    """Whether ``text`` places its date in the past ("ayer", "hace 3 días", "ya pagué")."""
    return bool(PAST_DATE_WORDS.search(fold(text))) or reports_past_action(text)


def has_explicit_year(text: str) -> bool:
    """Whether ``text`` writes out a year ("15/03/1985", "de 2027", "15/03/85")."""
    folded = fold(text)
    return bool(
        re.search(r"\b(?:19|20)\d{2}\b", folded)
        or re.search(r"\b\d{1,2}[/-]\d{1,2}[/-]\d{2}\b", folded)
    )


class DateMention(NamedTuple):
    """A date phrase found in a longer text: character offsets into it, and its date."""

    start: int
    end: int
    value: date


_NUMBER_WORD = (
    r"(?:\d{1,2}|un|una|uno|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|once|doce|trece"
    r"|catorce|quince|dieci\w+|veinte|veinti\w+|treinta(?: y \w+)?)"
)
# Unmistakable date phrases, searched in a whole message (folded, so offsets are the original's).
DATE_SPOTTERS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        rf"\b(?:el )?(?:\d{{1,2}}|primero) de {MONTH}\b(?: (?:de |del )?(?:19|20)\d{{2}})?",
        r"\b\d{1,2}/\d{1,2}(?:/(?:\d{4}|\d{2}))?\b",
        r"\bpasado manana\b",
        r"(?<!la )\bmanana(?: mismo)?\b",
        r"\bhoy(?: mismo)?\b",
        r"\b(?:ayer|antier|anteayer)\b",
        rf"\b(?:el |este |el proximo |proximo )?{WEEKDAY}"
        rf"(?: que viene| de esta semana| de la {NEXT_WEEK}| pasado)?\b",
        rf"\b(?:(?:a )?(?:fin|fines|finales) de(?:l)? (?:mes|{MONTH})|fin de semana)\b",
        rf"\b(?:a )?(?:principios|inicios) de(?:l)? (?:mes|{MONTH})\b",
        r"\b(?:la |esta |la proxima |el dia de )quincena\b",
        rf"\b(?:en|dentro de|hace) {_NUMBER_WORD} (?:dias?|semanas?)\b",
        rf"\b(?:la )?{NEXT_WEEK}\b",
        r"\b(?:el )?dia \d{1,2}\b",
        r"\b(?:para el|hasta el|el) \d{1,2}\b(?![\d/.,:%-])"
        r"(?! ?(?:por ciento|pesos|mil|k\b|pagos?))",
        r"\bel primero\b",
    )
)


def find_dates(text: str, today: date, *, allow_past: bool = False) -> list[DateMention]:
    """Unmistakable date phrases in a whole message, longest first where they overlap."""
    folded = fold(text)
    spans = sorted(
        {m.span() for spotter in DATE_SPOTTERS for m in spotter.finditer(folded)},
        key=lambda span: (span[0], -span[1]),
    )
    mentions: list[DateMention] = []
    for start, end in spans:
        if mentions and start < mentions[-1].end:
            continue
        value = parse_date(text[start:end], today, allow_past=allow_past)
        if value is not None:
            mentions.append(DateMention(start, end, value))
    return mentions
