"""Rasa SDK custom actions: thin — slots in, a domain call, a response out.

The action server imports every module of this package (``python -m rasa_sdk
--actions actions``). No SQL and no HTTP here: the domain core in ``bot/`` does it.
"""
