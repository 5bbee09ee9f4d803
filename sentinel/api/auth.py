"""Who may read the status page and the API, and whether a write comes from our own page.

Reads are open unless `server.basic_auth_file` (htpasswd-style `user:bcrypt-hash` lines, as
Flower's `--basic_auth` and Prometheus' web config) or `server.read_token` is set; then a read
needs valid Basic credentials, or `Authorization: Bearer` with the read token or the write
token, or the read token in the cookie the page's form sets. The write token alone is enough
for a write (one Authorization header cannot carry two credentials).

bcrypt is slow on purpose (~0.1-0.3 s a check): a page that refreshes itself would pay that on
every request. A credential that verified once is remembered by its SHA-256 (not the password),
for the life of that version of the file, in a small bounded map.

CSRF: the page sends writes with fetch() and the token in a header, which another site cannot
do; a write whose Origin (or Sec-Fetch-Site) says it comes from another site is refused too,
for the set-up without a token (loopback) and for Basic credentials a browser would replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from sentinel.api.http import Request

log = logging.getLogger("sentinel.api")

READ_COOKIE = "sentinel_read_token"
MAX_REMEMBERED = 64  # verified credentials kept (each a 32-byte digest)


class Htpasswd:
    """`user:hash` lines (bcrypt: $2a$, $2b$, $2y$), re-read when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._users: dict[str, bytes] = {}
        self._verified: set[bytes] = set()
        self.load()

    def load(self) -> None:
        st = os.stat(self.path)
        stamp = (st.st_mtime, st.st_size)
        users: dict[str, bytes] = {}
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                user, sep, hashed = line.partition(":")
                if not sep or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                    log.warning("%s:%d: not user:bcrypt-hash, ignored", self.path, number)
                    continue
                users[user] = hashed.encode()
        with self._lock:
            self._users, self._stamp, self._verified = users, stamp, set()

    def _fresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep the users we have rather than locking everyone out
        if (st.st_mtime, st.st_size) != self._stamp:
            try:
                self.load()
            except (OSError, UnicodeDecodeError) as e:
                log.warning("cannot re-read %s, keeping the previous users: %s", self.path, e)

    def check(self, user: str, password: str) -> bool:
        import bcrypt  # imported here: only a configured basic_auth_file needs it

        self._fresh()
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            hashed = self._users.get(user)
            if hashed is None:
                return False
            if digest in self._verified:
                return True
        try:
            ok = bool(bcrypt.checkpw(password.encode(), hashed))
        except ValueError:
            return False
        if ok:
            with self._lock:
                if len(self._verified) >= MAX_REMEMBERED:
                    self._verified.clear()
                self._verified.add(digest)
        return ok


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Denied:
    message: str
    challenge: str  # the WWW-Authenticate header


class Access:
    """Decides reads. `read_token` and `write_token` are read per request (a reload may
    change them); the htpasswd file is re-read when it changes."""

    def __init__(
        self,
        basic_auth_file: str | None,
        read_token: Callable[[], str],
        write_token: Callable[[], str],
    ) -> None:
        self.htpasswd = Htpasswd(basic_auth_file) if basic_auth_file else None
        self.read_token = read_token
        self.write_token = write_token

    def read_token_matches(self, given: str) -> bool:
        return _same(given, self.read_token())

    @property
    def uses_basic(self) -> bool:
        return self.htpasswd is not None

    @property
    def protected(self) -> bool:
        return self.htpasswd is not None or bool(self.read_token())

    def check_read(self, request: Request) -> Denied | None:
        """None when the request may read."""
        if not self.protected:
            return None
        scheme, _, given = (request.header("Authorization") or "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and (
            _same(given, self.read_token()) or _same(given, self.write_token())
        ):
            return None
        if scheme.lower() == "basic" and self.htpasswd is not None:
            try:
                user, sep, password = base64.b64decode(given, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if sep and self.htpasswd.check(user, password):
                return None
        if (cookie := _cookie(request, READ_COOKIE)) and _same(cookie, self.read_token()):
            return None
        if self.htpasswd is not None:
            return Denied("this endpoint needs credentials (Basic)", 'Basic realm="sentinel"')
        return Denied(
            "this endpoint needs Authorization: Bearer <read token>", 'Bearer realm="sentinel"'
        )


def _cookie(request: Request, name: str) -> str | None:
    raw = request.header("Cookie")
    if not raw:
        return None
    try:
        morsel = SimpleCookie(raw).get(name)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None


def cross_site(request: Request, external_url: str | None) -> bool:
    """Whether a write was sent by a page of another site (a browser says so in Origin or
    Sec-Fetch-Site; tools send neither)."""
    if (request.header("Sec-Fetch-Site") or "").lower() == "cross-site":
        return True
    origin = request.header("Origin")
    if not origin or origin == "null":
        return origin == "null"
    host = urlsplit(origin).netloc.lower()
    allowed = {(request.header("Host") or "").lower()}
    if external_url:
        allowed.add(urlsplit(external_url).netloc.lower())
    forwarded = request.header("X-Forwarded-Host")
    if forwarded:
        allowed.add(forwarded.split(",")[0].strip().lower())
    return host not in allowed
