"""The FastAPI gateway: webhooks, payment pages, sandbox, health; and ``acuerdo up``."""
