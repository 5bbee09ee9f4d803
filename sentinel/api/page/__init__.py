"""The status page at `/`: server-rendered HTML (jinja2, autoescaped: every label and annotation
is text, never markup), a little hand-written JS and CSS shipped in this package (no build, no
CDN: it works offline), charts as inline SVG.

`?fragment=1` renders only the sections, which the page's script fetches every few seconds and
swaps in (live refresh without reloading). Static files are answered with an ETag and a long
cache life (their URL carries the package version); HTML and static files are gzipped when the
client accepts it.
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape

from sentinel.api.auth import READ_COOKIE, Access
from sentinel.api.http import HttpError, Request, Response
from sentinel.api.page.ports import PagePorts
from sentinel.api.page.view import build

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
HTML = "text/html; charset=utf-8"
# The page and its data are the user's cluster: never cached by a proxy, never framed.
PAGE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
)


def _version() -> str:
    try:
        return version("sentinel-celery")
    except PackageNotFoundError:
        return "dev"


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sentinel.api.page", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = _iso
    return env


def compressed(
    request: Request, body: bytes, content_type: str, headers: tuple[tuple[str, str], ...]
) -> Response:
    """gzip when the client takes it: the page's weight is mostly text that compresses 5-10x."""
    vary = (("Vary", "Accept-Encoding"),)
    if len(body) > 512 and "gzip" in (request.header("Accept-Encoding") or ""):
        return Response(
            200,
            gzip.compress(body, compresslevel=6, mtime=0),
            content_type,
            (*headers, *vary, ("Content-Encoding", "gzip")),
        )
    return Response(200, body, content_type, (*headers, *vary))


class PageViews:
    def __init__(self, ports: PagePorts) -> None:
        self.ports = ports
        self.env = environment()
        self.version = _version()
        self._static: dict[str, tuple[bytes, bytes, str]] = {}  # name -> (body, gzipped, etag)
        folder = resources.files("sentinel.api.page") / "static"
        for entry in folder.iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix in STATIC_TYPES:
                data = entry.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                self._static[entry.name] = (data, gzip.compress(data, mtime=0), etag)

    def index(self, request: Request) -> Response:
        filters = {"channel": request.arg("channel")[:200], "alert": request.arg("alert")[:200]}
        page = build(self.ports, filters)
        name = "sections.html" if request.arg("fragment") else "page.html"
        html = self.env.get_template(name).render(page=page, version=self.version)
        return compressed(request, html.encode(), HTML, PAGE_HEADERS)

    def static(self, request: Request) -> Response:
        name = request.params["name"]
        found = self._static.get(name)
        if found is None:
            raise HttpError(404, f"no such file: {name}")
        data, zipped, etag = found
        content_type = STATIC_TYPES["." + name.rpartition(".")[2]]
        headers: tuple[tuple[str, str], ...] = (
            ("ETag", etag),
            ("Cache-Control", "public, max-age=86400"),
            ("X-Content-Type-Options", "nosniff"),
            ("Vary", "Accept-Encoding"),
        )
        if request.header("If-None-Match") == etag:
            return Response(304, b"", content_type, headers)
        if "gzip" in (request.header("Accept-Encoding") or ""):
            return Response(200, zipped, content_type, (*headers, ("Content-Encoding", "gzip")))
        return Response(200, data, content_type, headers)

    # -- the read token's form: a browser cannot send a Bearer header by itself -------------

    def login_form(self, request: Request, failed: bool = False) -> Response:
        prefix = self.ports.settings.settings().server.path_prefix
        html = self.env.get_template("login.html").render(
            prefix=prefix, version=self.version, failed=failed
        )
        return Response(401, html.encode(), HTML, PAGE_HEADERS)

    def login(self, request: Request, access: Access) -> Response:
        """POST read_token=...: a cookie for this path (HttpOnly, SameSite=Strict), then `/`."""
        form = parse_qs(request.body().decode("utf-8", "replace"), max_num_fields=5)
        given = (form.get("read_token") or [""])[0]
        if not access.read_token_matches(given):
            return self.login_form(request, failed=True)
        server = self.ports.settings.settings().server
        prefix = server.path_prefix
        secure = "; Secure" if server.base_url.startswith("https:") else ""
        cookie = f"{READ_COOKIE}={given}; Path={prefix or '/'}; HttpOnly; SameSite=Strict{secure}"
        return Response(
            303,
            b"",
            HTML,
            (("Location", f"{prefix}/"), ("Set-Cookie", cookie), ("Cache-Control", "no-store")),
        )
