"""Reading the CSV files operators load, and the cell formats they share.

A file is read in two passes. The first checks that it is usable at all (UTF-8,
a header with every required column, well-formed CSV) and counts its records,
so a broken file is refused before anything is written. The second yields the
records with the physical line number each starts on (the header is line 1).

What operators' spreadsheets produce and we accept: UTF-8 with or without a
byte-order mark, comma- or semicolon-separated (sniffed from the header), header
names in any case and with spaces for underscores (``Account ID``).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import available_timezones

from bot.domain.money import InvalidAmount, pesos_to_cents

DELIMITERS = (",", ";")
_READ_BLOCK = 1 << 20


class FileUnusable(Exception):
    """The file as a whole cannot be imported; the message says what to fix."""


class CellError(ValueError):
    """One cell's value is not acceptable; the message is the reason shown to the operator."""


@dataclass(frozen=True)
class CsvRow:
    """One record: its first physical line and its values by normalized column name."""

    line: int
    values: dict[str, str]
    extra: tuple[str, ...] = ()  # values beyond the header's columns

    def get(self, column: str) -> str:
        """The stripped value of ``column`` (empty when the column or the value is absent)."""
        return self.values.get(column, "").strip()


@dataclass(frozen=True)
class CsvTable:
    """A checked CSV file, ready to be read record by record."""

    path: Path
    delimiter: str
    columns: tuple[str, ...]
    row_count: int

    def rows(self) -> Iterator[CsvRow]:
        """The non-blank records after the header, in file order."""
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            next(reader, None)
            start = reader.line_num + 1
            for record in reader:
                line, start = start, reader.line_num + 1
                if not any(value.strip() for value in record):
                    continue
                yield _row(line, self.columns, record)


def normalize_column(name: str, known: Sequence[str] = ()) -> str:
    """The column a header cell names: ``' Account ID '`` → ``'account_id'``.

    Case, spaces, hyphens and underscores are ignored when matching ``known``
    names (``Time Zone`` is ``timezone``); other names are lower-cased with
    underscores for spaces.
    """
    key = _column_key(name)
    for candidate in known:
        if _column_key(candidate) == key:
            return candidate
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _column_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def open_csv(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> CsvTable:
    """Check ``path`` and return a :class:`CsvTable`, or raise :class:`FileUnusable`."""
    _check_utf8(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header_line = handle.readline()
            if not header_line.strip():
                raise FileUnusable(
                    f"{path} has no header row; the first line must name the columns: "
                    + ", ".join(required)
                )
            delimiter = _sniff_delimiter(header_line)
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader)
            columns = _check_header(path, header, required, optional)
            count = sum(1 for record in reader if any(value.strip() for value in record))
    except csv.Error as exc:
        raise FileUnusable(f"{path}, line {reader.line_num}: not readable as CSV ({exc})") from exc
    except OSError as exc:
        raise FileUnusable(f"cannot read {path}: {exc.strerror or exc}") from exc
    return CsvTable(path=path, delimiter=delimiter, columns=columns, row_count=count)


def _check_utf8(path: Path) -> None:
    """Refuse files that are not UTF-8 text, naming the first bad line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(_READ_BLOCK):
                if b"\x00" in block:
                    raise FileUnusable(f"{path} is not a text file (it contains NUL bytes)")
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    line = lines_before + block.count(b"\n", 0, exc.start) + 1
                    raise FileUnusable(
                        f"{path} is not UTF-8 text (line {line}: byte "
                        f"0x{block[exc.start]:02x}); save it as 'CSV UTF-8' and try again"
                    ) from None
                lines_before += block.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise FileUnusable(f"{path} is not UTF-8 text (it ends mid-character)") from None
    except FileNotFoundError:
        raise FileUnusable(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FileUnusable(f"{path} is a directory, not a CSV file") from None
    except OSError as exc:
        raise FileUnusable(f"cannot read {path}: {exc.strerror or exc}") from None
    if lines_before == 0 and path.stat().st_size == 0:
        raise FileUnusable(f"{path} is empty")


def _sniff_delimiter(header_line: str) -> str:
    """The delimiter used more often in the header (outside quotes); comma on a tie."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    return max(DELIMITERS, key=unquoted.count)


def _check_header(
    path: Path, header: list[str], required: Sequence[str], optional: Sequence[str]
) -> tuple[str, ...]:
    known = (*required, *optional)
    columns = tuple(normalize_column(name, known) for name in header)
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if name and name in seen:
            raise FileUnusable(
                f"{path}: column '{name}' appears twice (columns {seen[name]} and {position})"
            )
        seen[name] = position
    missing = [name for name in required if name not in seen]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        found = ", ".join(name for name in columns if name) or "none"
        raise FileUnusable(
            f"{path}: missing required column{plural} {', '.join(missing)} (found: {found})"
        )
    return columns


def _row(line: int, columns: tuple[str, ...], record: list[str]) -> CsvRow:
    values = dict(zip(columns, record, strict=False))
    return CsvRow(line=line, values=values, extra=tuple(record[len(columns) :]))


def overflow_reason(row: CsvRow, other_problems: bool) -> str | None:
    """Why a row with more values than the header has columns is suspect, if it is.

    Empty extra values (a trailing separator) are harmless on their own; extra
    values, or other problems in a row that has extra fields, usually mean an
    unquoted value containing the separator (``10,000.00``) shifted the row.
    """
    if not row.extra or not (other_problems or any(value.strip() for value in row.extra)):
        return None
    width = len(row.values) + len(row.extra)
    return (
        f"has {width} values but the header has {len(row.values)} columns "
        "(a value containing the separator must be in double quotes)"
    )


# --- cell formats -------------------------------------------------------------------------

_PLAIN_PESOS = re.compile(r"^(\d{1,15})(?:\.(\d{0,2}))?$")
_THOUSANDS = re.compile(r"^-?\$?\s*\d{1,3}(,\d{3})+(\.\d*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse_iso_date(text: str) -> date:
    """``YYYY-MM-DD`` only: spreadsheets' ``15/03/1985`` is ambiguous between locales."""
    if len(text) != 10:
        raise CellError(f"'{text}' is not a date in YYYY-MM-DD form")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CellError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def parse_iso_moment(text: str, tz: tzinfo) -> tuple[datetime, bool]:
    """An ISO date (noon in ``tz``) or date-time (``tz`` when it has no offset).

    Returns the instant and whether only a date was given.
    """
    if len(text) == 10:
        return datetime.combine(parse_iso_date(text), time(12, 0), tzinfo=tz), True
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CellError(
            f"'{text}' is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS][±HH:MM])"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)), False


def parse_pesos(text: str) -> int:
    """Decimal pesos into centavos: ``1234.50``, ``$1,234.50``; never negative.

    A comma is accepted only as a thousands separator, so a decimal comma
    (``1234,50``) is refused instead of being read as a hundred times the amount.
    """
    if not text:
        raise CellError("is empty; write an amount in pesos such as 1234.50")
    plain = _PLAIN_PESOS.match(text)
    if plain:  # the common case, without Decimal
        whole, cents = plain.groups()
        return int(whole) * 100 + int((cents or "").ljust(2, "0"))
    if "," in text and not _THOUSANDS.match(text):
        raise CellError(f"'{text}' is not an amount in pesos (use a point for decimals: 1234.50)")
    try:
        cents = pesos_to_cents(text)
    except InvalidAmount as exc:
        raise CellError(str(exc)) from None
    if cents < 0:
        raise CellError(f"'{text}' is negative; amounts must be 0 or more")
    return cents


def parse_email(text: str) -> str:
    if len(text) > 320 or not _EMAIL.match(text):
        raise CellError(f"'{text}' is not an email address")
    return text


def parse_currency(text: str) -> str:
    if not _CURRENCY.match(text):
        raise CellError(f"'{text}' is not a currency code (three capital letters, e.g. MXN)")
    return text


def parse_timezone(text: str) -> str:
    if text not in _known_zones():
        raise CellError(f"'{text}' is not an IANA time zone (e.g. America/Mexico_City)")
    return text


def check_length(text: str, limit: int) -> str:
    if len(text) > limit:
        raise CellError(f"is {len(text)} characters long; at most {limit} fit")
    return text


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())
