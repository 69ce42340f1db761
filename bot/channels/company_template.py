"""Company-started templates: filled from the policy, and kept on an outbox row so that the
same message can be queued again on another channel (see :mod:`bot.channels.fallback`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.channels.base import TemplateMessage
from bot.policy import Policy

_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class UnknownTemplate(ValueError):
    """The policy file has no template of that name."""


def company_template(
    policy: Policy,
    template_name: str,
    variables: Sequence[str],
    button_payloads: Sequence[str] | None = None,
) -> TemplateMessage:
    """The policy's template ``template_name`` with ``{{1}}…{{n}}`` filled from ``variables``."""
    template = policy.templates.get(template_name)
    if template is None:
        raise UnknownTemplate(f"policy.yml has no template '{template_name}'")
    values = [str(v) for v in variables]

    def fill(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return values[index] if 0 <= index < len(values) else ""

    titles = tuple(template.buttons)
    payloads = tuple(button_payloads) if button_payloads else titles
    preview = _PLACEHOLDER.sub(fill, template.body)
    if template.footer:  # the approved footer (the opt-out notice) is part of what they read
        preview = f"{preview}\n\n{template.footer}"
    return TemplateMessage(
        name=template_name,
        language=template.language,
        params=tuple(values),
        button_payloads=payloads,
        preview=preview,
        button_titles=titles,
    )


def company_info(
    template: TemplateMessage, *, debtor_id: int, account_id: int | None
) -> dict[str, Any]:
    """What a hop needs to queue the same message again, on another channel."""
    return {
        "template": template.name,
        "language": template.language,
        "variables": list(template.params),
        "button_payloads": list(template.button_payloads),
        "button_titles": list(template.button_titles),
        "preview": template.preview,
        "debtor_id": debtor_id,
        "account_id": account_id,
    }


def template_from(info: Mapping[str, Any]) -> TemplateMessage:
    """The template :func:`company_info` described."""
    return TemplateMessage(
        name=str(info.get("template") or ""),
        language=str(info.get("language") or "es_MX"),
        params=tuple(str(v) for v in info.get("variables") or ()),
        button_payloads=tuple(str(v) for v in info.get("button_payloads") or ()),
        preview=str(info.get("preview") or ""),
        button_titles=tuple(str(v) for v in info.get("button_titles") or ()),
    )
