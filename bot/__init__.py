"""Acuerdo: a conversational debt-negotiation assistant.

This package is imported by two environments: the application (.venv) and the
Rasa engine (.venv-rasa, for ``bot.nlu`` only). Keep this file free of imports.
"""

__version__ = "0.1.0"
