"""ReDoc served with nothing fetched from outside.

fastapi-offline serves ReDoc's script locally, but the script itself loads its sidebar logo
from cdn.redoc.ly. The page's Content-Security-Policy keeps every fetch on this origin (the
image then fails quietly and ReDoc hides it).
"""

import html

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

STATIC_URL = "/static-offline-docs"  # where fastapi-offline mounts its files
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' blob:; worker-src 'self' blob:; font-src 'self' data:; "
    "connect-src 'self'"
)


def add_redoc(app: FastAPI, path: str = "/redoc") -> None:
    """The ReDoc page at `path`, behind a policy that allows this origin only."""

    @app.get(path, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = html.escape(request.scope.get("root_path", ""), quote=True)
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(app.title)} - ReDoc</title>"
            f'<link rel="icon" href="{root}{STATIC_URL}/favicon.png">'
            "<style>body{margin:0;padding:0}</style></head><body>"
            f'<redoc spec-url="{root}{app.openapi_url}"></redoc>'
            f'<script src="{root}{STATIC_URL}/redoc.standalone.js"></script>'
            "</body></html>"
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": POLICY})
