"""The web console of ``vecsim serve`` (docs/console.md): static files shipped in this package
(``index.html``, ``console.js``, ``console.css``, ``icon.svg``), served at ``/`` and
``/console/<file>`` when the ``console`` setting is on (it is off by default).

The page calls the same ``/api/v2`` endpoints as any client, with the key the user types in.
Every answer here carries a strict Content-Security-Policy (scripts, styles and requests from
this origin only: no inline script, nothing from elsewhere) and ``nosniff``; ``index.html`` is
revalidated on every load (``no-cache`` and an ETag) and names its script and style sheet by
content hash, so that those two are cached for good and a new version is fetched at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import ServiceError

CSP = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob:", "media-src 'self' blob:",
    "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
}
REVALIDATE = "no-cache"
FOREVER = "public, max-age=31536000, immutable"

#: the files served under /console/, and their types; index.html is served at /
ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8",
          "icon.svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def load_files() -> dict[str, StaticFile]:
    """The console's files from the installed package; ``index.html`` refers to each asset as
    ``console/<name>?v=<its content hash>``."""
    root = files(__name__)
    out = {name: StaticFile(root.joinpath(name).read_bytes(), kind) for name, kind in ASSETS.items()}
    html = root.joinpath("index.html").read_text(encoding="utf-8")
    for name, asset in out.items():
        ref = f'"console/{name}"'
        if ref not in html:
            raise RuntimeError(f"vecsim's console index.html does not refer to {ref}: the package is damaged")
        html = html.replace(ref, f'"console/{name}?v={asset.version}"')
    out["index.html"] = StaticFile(html.encode("utf-8"), "text/html; charset=utf-8")
    return out


def _answer(request: Request, static: StaticFile, cache: str) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": static.etag}
    given = request.headers.get("if-none-match", "")
    if static.etag in (tag.strip().removeprefix("W/") for tag in given.split(",")):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else static.body
    return Response(body, media_type=static.media_type, headers=headers)


def console_router() -> APIRouter:
    """The routes of the console (left out of the OpenAPI document: they are not the API)."""
    static = load_files()
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def console_index(request: Request) -> Response:
        return _answer(request, static["index.html"], REVALIDATE)

    @router.api_route("/console/{name}", methods=["GET", "HEAD"])
    async def console_asset(name: str, request: Request) -> Response:
        if name not in ASSETS:
            raise ServiceError(404, "not_found", f"the console has no file {name!r}")
        found = static[name]
        return _answer(request, found, FOREVER if request.query_params.get("v") == found.version else REVALIDATE)

    return router
