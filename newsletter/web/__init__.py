"""Web: the ASGI applications. `app` serves sign-up (double opt-in), RFC 8058 one-click
unsubscribe, preferences and the archive; `preview` is the editor's live preview.

Run in production with `uvicorn --factory newsletter.web.app:app_from_environment`.
May import `compose`, `deliver`, `publish`, `checks` and the shared modules; never `cli`.
"""
