"""HTTPS without a proxy (`server.tls_cert_file` / `server.tls_key_file`), as Flower's
`--certfile/--keyfile`: waitress speaks plain HTTP only, so its non-blocking channels are taught
TLS here, in the I/O thread, as asyncore servers did it (the handshake as a small state machine,
"want read/write" as "nothing yet"). A slow or silent handshake costs one idle connection, closed
by the server's idle timeout like any other; a client that is not speaking TLS is closed.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import Any

log = logging.getLogger("sentinel.api")


def context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with Python's defaults (TLS 1.2+, its cipher choice)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def wrap(ctx: ssl.SSLContext, conn: socket.socket) -> ssl.SSLSocket:
    return ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)


class TlsChannel:
    """Mixed in before waitress's HTTPChannel (and our lingering close) for TLS sockets."""

    # Declared for readers and type checkers; HTTPChannel and _Channel provide them, with
    # handle_close() and received().
    socket: Any
    adj: Any
    last_activity: float
    _linger_until: float
    handle_close: Any
    received: Any
    _tls_ready = False
    _tls_wants_write = False

    def readable(self) -> bool:
        if not self._tls_ready:
            return True
        return bool(super().readable())  # type: ignore[misc]

    def writable(self) -> bool:
        if not self._tls_ready:
            return self._tls_wants_write
        return bool(super().writable())  # type: ignore[misc]

    def handle_read(self) -> None:
        if not self._tls_ready:
            return self._handshake()
        if self._linger_until:
            return super().handle_read()  # type: ignore[misc,no-any-return]
        try:
            data = self.socket.recv(self.adj.recv_bytes)
            # Decrypted bytes already inside the TLS object are invisible to poll(): take them.
            while data and (pending := self.socket.pending()):
                data += self.socket.recv(pending)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None  # part of a record: the rest comes with the next readable event
        except OSError:  # a TLS alert, a reset
            self.handle_close()
            return None
        if not data:
            self.handle_close()
            return None
        self.last_activity = time.time()
        self.received(data)
        return None

    def handle_write(self) -> None:
        if not self._tls_ready:
            return self._handshake()
        return super().handle_write()  # type: ignore[misc,no-any-return]

    def send(self, data: bytes, do_close: bool = True) -> int:
        try:
            return int(self.socket.send(data))
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0  # retried with the same bytes (Python sets SSL_MODE_ACCEPT_MOVING_WRITE)
        except OSError:
            if do_close:
                self.handle_close()
            return 0

    def _handshake(self) -> None:
        try:
            self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_wants_write = False
            return
        except ssl.SSLWantWriteError:
            self._tls_wants_write = True
            return
        except OSError as e:  # plain HTTP on the TLS port, a certificate the client refused
            log.debug("TLS handshake failed: %s", e)
            self.handle_close()
            return
        self._tls_ready, self._tls_wants_write = True, False
        self.last_activity = time.time()
