"""The agent console (``/console``): the queue of escalated chats, the chat with the debtor's
ledger beside it, and the agent's actions. See ``docs/console.md``.

Modules: ``auth`` (session cookie, CSRF, roles), ``login`` / ``routes`` / ``live`` / ``media``
/ ``letters`` (the web routes: sign-in, pages and actions, live updates, the files debtors
send, the carta finiquito),
``service`` (one function per action), ``pages`` and ``views`` (what the pages show),
``texts`` (the Spanish, in YAML).
"""

from fastapi import APIRouter

from bot.console import letters, live, login, media, routes

router = APIRouter()
router.include_router(login.router)
router.include_router(routes.router)
router.include_router(live.router)
router.include_router(media.router)
router.include_router(letters.router)

__all__ = ["router"]
