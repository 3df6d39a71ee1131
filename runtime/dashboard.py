"""The dashboard at ``/dashboard``: one static page (``runtime/static``) that draws the call API
by hand. The page itself holds no data, so it is public; every figure comes from ``/api/v1``
with the bearer token the user gives the page.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")

#: Only this server's own scripts, styles and connections: a script injected through call data
#: could not run, and nothing is ever loaded from another origin. ``blob:`` plays the recording
#: fetched with the token.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "media-src 'self' blob:; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


async def dashboard_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "dashboard.html", headers=_PAGE_HEADERS)


def add_dashboard_routes(app: web.Application) -> None:
    """``GET /dashboard`` and its script and stylesheet under ``/dashboard/static/``."""
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_static("/dashboard/static/", STATIC_DIR)
