"""The carta finiquito as a PDF (fpdf2): the frozen facts of a letter, laid out on one page.

The words are in ``finiquito.yml``; this module only places them. Accented Spanish needs a
Unicode TrueType font: DejaVu Sans (Debian's ``fonts-dejavu-core``). Without it rendering
stops with :class:`FontMissing`, naming the package, rather than print a letter with the
accents dropped. The output depends only on the facts, the URL and the issue moment (the
PDF's creation date is the letter's ``issued_at``), so it reads the same however often it
is rendered; it is stored once all the same (``bot/documents/letters.py``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import segno
import yaml

from bot.db.models import LetterKind
from bot.domain.money import format_money
from bot.domain.settlement_letters import LetterFacts
from bot.spanish import written_date

if TYPE_CHECKING:  # fpdf (and Pillow under it) load when a letter is rendered, not before:
    from fpdf import FPDF  # the action server and the gateway import this module

TEXTS_FILE = Path(__file__).with_name("finiquito.yml")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
# Where Debian/Ubuntu, Fedora/Arch and Homebrew put DejaVu Sans.
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/opt/homebrew/share/fonts"),
)
FONT = "DejaVu"
MARGIN = 20  # mm
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (200, 205, 210)


class FontMissing(RuntimeError):
    """DejaVu Sans is not installed where the renderer looks for it."""


@dataclass(frozen=True)
class LetterDocument:
    """Everything a rendering needs besides the facts."""

    verification_url: str
    issued_at: datetime  # aware; the PDF's creation date


@lru_cache(maxsize=1)
def finiquito_texts(path: str = str(TEXTS_FILE)) -> dict[str, str]:
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {key: str(value) for key, value in data.items()}


def find_font_dir(candidates: tuple[Path, ...] = FONT_DIRS) -> Path:
    """The first folder holding DejaVu Sans regular and bold, or :class:`FontMissing`."""
    for folder in candidates:
        if all((folder / name).is_file() for name in FONT_FILES):
            return folder
    raise FontMissing(
        "The carta finiquito needs the DejaVu Sans font (DejaVuSans.ttf, DejaVuSans-Bold.ttf) "
        f"in one of {', '.join(str(d) for d in candidates)}; on Debian or Ubuntu: "
        "apt-get install fonts-dejavu-core"
    )


def render_finiquito(
    facts: LetterFacts, document: LetterDocument, *, font_dir: Path | None = None
) -> bytes:
    """The PDF bytes of one letter."""
    texts = finiquito_texts()
    folder = font_dir or find_font_dir()
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="Letter")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN)
    pdf.add_font(FONT, "", str(folder / FONT_FILES[0]))
    pdf.add_font(FONT, "B", str(folder / FONT_FILES[1]))
    pdf.set_creation_date(document.issued_at)
    pdf.set_title(texts["title"])
    pdf.set_author(facts.creditor)
    pdf.set_creator("Acuerdo")
    pdf.set_lang("es-MX")
    pdf.add_page()
    fill = _fields(facts, document)

    _header(pdf, texts, facts, fill)
    _paragraph(pdf, texts["salutation"])
    body = texts["settlement" if facts.kind == LetterKind.SETTLEMENT.value else "paid_in_full"]
    _paragraph(pdf, body.format(**fill))
    if facts.kind == LetterKind.SETTLEMENT.value and facts.agreement_total_cents is not None:
        _amounts(pdf, texts, fill)
    _payments(pdf, texts, facts)
    _paragraph(pdf, texts["no_balance"].format(**fill), bold=True)
    _paragraph(pdf, texts["thanks"])
    _verification(pdf, texts, fill, document.verification_url)
    pdf.set_font(FONT, "", 8.5)
    pdf.set_text_color(*MUTED)
    automated = texts["automated"].format(**fill)
    pdf.multi_cell(0, 4.5, automated, align="L", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _fields(facts: LetterFacts, document: LetterDocument) -> dict[str, str]:
    def money(cents: int | None) -> str:
        return format_money(cents or 0, facts.currency)

    return {
        "creditor": facts.creditor,
        "debtor_name": facts.debtor_name,
        "product": facts.product,
        "last4": facts.account_last4,
        "paid_off_on": written_date(facts.paid_off_on),
        "issued_on": written_date(facts.issued_on),
        "total": money(facts.total_paid_cents),
        "agreed_amount": money(facts.agreement_total_cents),
        "original_balance": money(facts.original_balance_cents),
        "url": document.verification_url,
        "code": facts.code,
    }


def _header(pdf: FPDF, texts: dict[str, str], facts: LetterFacts, fill: dict[str, str]) -> None:
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 7, facts.creditor, new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.4)
    pdf.line(MARGIN, pdf.get_y() + 1, pdf.w - MARGIN, pdf.get_y() + 1)
    pdf.ln(8)
    pdf.set_font(FONT, "B", 16)
    pdf.multi_cell(0, 8, texts["title"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 6, texts["issued_line"].format(**fill), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    pdf.ln(5)


def _paragraph(pdf: FPDF, text: str, *, bold: bool = False) -> None:
    pdf.set_font(FONT, "B" if bold else "", 11)
    pdf.set_text_color(*INK)
    pdf.multi_cell(0, 6, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _amounts(pdf: FPDF, texts: dict[str, str], fill: dict[str, str]) -> None:
    pdf.set_font(FONT, "", 10.5)
    rows = (
        (texts["original_label"], fill["original_balance"]),
        (texts["agreement_label"], fill["agreed_amount"]),
    )
    with pdf.table(
        rows=rows,
        col_widths=(120, 55),
        text_align=("LEFT", "RIGHT"),
        first_row_as_headings=False,
        borders_layout="HORIZONTAL_LINES",
        line_height=7,
        padding=(1, 2),
    ):
        pass
    pdf.ln(4)


def _payments(pdf: FPDF, texts: dict[str, str], facts: LetterFacts) -> None:
    from fpdf.fonts import FontFace

    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, texts["payments_heading"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    with pdf.table(
        col_widths=(58, 37, 80),
        text_align=("LEFT", "RIGHT", "LEFT"),
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD"),
        line_height=6.5,
        padding=(1, 2),
    ) as table:
        heading = table.row()
        for title in (texts["column_date"], texts["column_amount"], texts["column_reference"]):
            heading.cell(title)
        for payment in facts.payments:
            row = table.row()
            row.cell(written_date(payment.paid_on))
            row.cell(format_money(payment.amount_cents, facts.currency))
            row.cell(payment.reference)
        total = table.row(style=FontFace(emphasis="BOLD"))
        total.cell(texts["total_label"])
        total.cell(format_money(facts.total_paid_cents, facts.currency))
        total.cell("")
    pdf.ln(5)


def _verification(pdf: FPDF, texts: dict[str, str], fill: dict[str, str], url: str) -> None:
    size = 30  # mm
    if pdf.will_page_break(size + 12):
        pdf.add_page()
    top = pdf.get_y() + 2
    png = io.BytesIO()
    segno.make_qr(url, error="m").save(png, kind="png", scale=6, border=2)
    pdf.image(png, x=MARGIN, y=top, w=size, h=size)
    pdf.set_xy(MARGIN + size + 6, top)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 6, texts["verify_heading"], new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(0, 5.5, texts["verify_text"], new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(0, 5.5, url, new_x="LEFT", new_y="NEXT")
    pdf.multi_cell(0, 5.5, texts["verify_code"].format(**fill), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + size) + 6)
