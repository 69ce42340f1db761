"""QR codes for payment links.

The QR holds exactly the payment link, ``{ACUERDO_PUBLIC_URL}/pay/{token}`` (see
:func:`bot.payments.links.payment_url`): scanning it opens the hosted payment page with the
amount, reference, CLABE and instructions. It is not a CoDi request (``BXC://…``): CoDi
needs a collection account at a bank registered with Banxico, which a real provider
adapter would bring. Error correction M (about 15 % of the symbol may be damaged),
raised by segno when the data leaves room.
"""

from __future__ import annotations

import io

import segno


def _qr(data: str) -> segno.QRCode:
    if not data:
        raise ValueError("a QR code needs data to encode")
    return segno.make_qr(data, error="m")  # a full QR code, never a Micro QR phones can't read


def qr_png(data: str, scale: int = 8, border: int = 4) -> bytes:
    """A black-on-white PNG of ``data`` (``scale`` pixels per module, 4-module quiet zone)."""
    buffer = io.BytesIO()
    _qr(data).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def qr_svg(data: str, scale: int = 8, border: int = 4) -> str:
    """An SVG document of ``data``, to inline in the payment page."""
    buffer = io.BytesIO()
    _qr(data).save(buffer, kind="svg", scale=scale, border=border, xmldecl=False)
    return buffer.getvalue().decode("utf-8")
