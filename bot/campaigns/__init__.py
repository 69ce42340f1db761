"""Reminder campaigns: the schedule relative to the due date, promise reminders and
broken-promise follow-ups, sent as approved templates through the compliance gate.

``runner.run_campaign`` is the entry point; ``commands`` adds ``acuerdo campaign run`` and
``scheduler`` runs it hourly inside the gateway.
"""
