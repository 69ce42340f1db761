"""Compliance: the one gate every company-started message passes (CONTRACT 6.9, section 7)."""

from bot.compliance.gate import (
    COMPANY_MESSAGE,
    DELAY_REASONS,
    KINDS,
    SUPPRESSION_REASONS,
    Decision,
    Kind,
    Verdict,
    company_messages_since,
    decide,
    evaluate,
    record_company_message,
    record_decision,
)
from bot.compliance.profiles import (
    PROFILES,
    ComplianceConfigError,
    ContactRules,
    contact_rules,
    profile_problems,
    template_carries_notice,
    with_opt_out_notice,
)
from bot.compliance.window import closed_reason, debtor_zone, next_opening

__all__ = [
    "COMPANY_MESSAGE",
    "DELAY_REASONS",
    "KINDS",
    "PROFILES",
    "SUPPRESSION_REASONS",
    "ComplianceConfigError",
    "ContactRules",
    "Decision",
    "Kind",
    "Verdict",
    "closed_reason",
    "company_messages_since",
    "contact_rules",
    "debtor_zone",
    "decide",
    "evaluate",
    "next_opening",
    "profile_problems",
    "record_company_message",
    "record_decision",
    "template_carries_notice",
    "with_opt_out_notice",
]
