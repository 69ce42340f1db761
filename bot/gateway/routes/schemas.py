"""What the gateway's OpenAPI document says about its own routes: webhook bodies, signature
headers and every answer a route may give (``tests/test_fuzz_openapi.py`` holds the routes
to it).

The webhooks read their raw body themselves (the signature is over the exact bytes), so
FastAPI cannot infer these; they are declared here. The body schemas describe the envelope
each channel sends, loosely: the parsers, not the schema, decide what is accepted.
"""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

_DETAIL = {"type": "object", "properties": {"detail": {}}}


def json_answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or _DETAIL}},
    }


def text_answer(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def webhook_responses(extra: Responses | None = None) -> Responses:
    """The answers of a signed webhook, with ``extra`` added or replacing some."""
    return {
        200: json_answer("Stored (or acknowledged); counts of what was stored and ignored"),
        400: json_answer("The body is not a delivery of this channel"),
        401: json_answer("Missing or invalid signature; nothing stored"),
        413: json_answer("Body over the limit; not read"),
        415: json_answer("Content type is not JSON"),
        422: json_answer("Some items were malformed; the good ones were stored"),
        503: json_answer("Storage unavailable; the sender should retry"),
        **(extra or {}),
    }


def signed_json_body(
    schema: dict[str, Any], signature_header: str, *, required: bool = True
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a signed JSON body itself (``required``:
    whether every call carries the signature)."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "parameters": [
            {
                "name": signature_header,
                "in": "header",
                "required": required,
                "description": "Signature over the exact body bytes",
                "schema": {"type": "string"},
            }
        ],
    }


WHATSAPP_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["object", "entry"],
    "properties": {
        "object": {"const": "whatsapp_business_account"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["changes"],
                "properties": {
                    "id": {"type": "string"},
                    "changes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "value"],
                            "properties": {
                                "field": {"type": "string"},
                                "value": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
    },
}

RBM_PUSH: dict[str, Any] = {
    "description": "A Pub/Sub push (message.data: base64 of the RBM event), or RBM's "
    "verification request (clientToken, secret)",
    "type": "object",
    "properties": {
        "message": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "string", "format": "byte"},
                "messageId": {"type": "string"},
                "publishTime": {"type": "string"},
            },
        },
        "subscription": {"type": "string"},
        "clientToken": {"type": "string"},
        "secret": {"type": "string"},
    },
}

LOCAL_PAYMENT_EVENT: dict[str, Any] = {
    "description": "The local provider's payment confirmation",
    "type": "object",
    "required": ["event_id", "reference", "amount", "currency", "paid_at"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "reference": {"type": "string", "minLength": 1, "maxLength": 64},
        "amount": {"type": ["string", "number"], "description": "pesos, e.g. 1250.50"},
        "currency": {"const": "MXN"},
        "paid_at": {"type": "string", "format": "date-time"},
    },
}

RCS_RESPONSES = webhook_responses(
    {
        200: {
            "description": "Stored (or acknowledged); or, to RBM's verification request, "
            "the secret echoed as plain text",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        403: json_answer("A verification request with another client token"),
        404: json_answer("The RCS channel is not configured"),
    }
)
PAYMENT_WEBHOOK_RESPONSES = {
    status: answer
    for status, answer in webhook_responses(
        {
            200: json_answer("Applied, a duplicate, or acknowledged (status and counts)"),
            400: json_answer("Not a payment event of this provider (reason)"),
            404: json_answer("Another payment provider is configured"),
            422: json_answer("Unknown reference, or another currency"),
        }
    ).items()
    if status != 415  # any content type: the provider's signature decides
}
PAGE_NOT_FOUND: Responses = {404: text_answer("No such payment link", "text/html")}
IMAGE_NOT_FOUND: Responses = {404: text_answer("No such payment link")}
LETTER_NOT_FOUND: Responses = {404: text_answer("No letter has this code", "text/html")}
LETTER_PDF_RESPONSES: Responses = {
    200: text_answer("The stored carta finiquito", "application/pdf"),
    **LETTER_NOT_FOUND,
    503: text_answer("The document cannot be rendered on this server (its font is missing)"),
}
