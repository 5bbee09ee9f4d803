"""`sentinel run`: the daemon, with SIGTERM/SIGINT to stop and SIGHUP to reload."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from sentinel.cli.common import load_config
from sentinel.config.loader import ConfigError, default_path

if TYPE_CHECKING:
    from sentinel.config import Config

log = logging.getLogger("sentinel")


def _refused(config: Config) -> list[str]:
    """Why `run` must not start with this config: a routed channel that cannot deliver would
    stay silent while alerts fire, so the operator hears it now rather than during an incident."""
    from sentinel.config.check import secret_problems

    return secret_problems(config, routed_only=True)


def cmd_run(args: argparse.Namespace) -> int:
    from sentinel.api.server import UnreadableFile
    from sentinel.app import Sentinel
    from sentinel.config.check import lint
    from sentinel.db.engine import StorageUnavailable

    config = load_config(args)
    if config is None:
        return 1
    path = args.config or default_path()
    refused = _refused(config)
    if refused:
        for line in refused:
            log.error("config: %s", line)
        log.error(
            "refusing to start: %d routed channel secret(s) empty or placeholders; set them "
            "(or take those channels out of the route) and start again",
            len(refused),
        )
        return 1
    for warning in lint(config, unrouted=False):
        log.warning("config: %s", warning)
    try:
        sentinel = Sentinel(config)
    except ConfigError as e:  # celery.app cannot be imported, or lacks a needed schedule
        for line in e.errors:
            log.error("config: %s", line)
        return 1
    except (OSError, sqlite3.Error) as e:  # storage.path unwritable, corrupt, on a full disk
        log.error("cannot open storage %s: %s", config.storage.path, e)
        return 1
    except StorageUnavailable as e:  # storage.url unreachable, or its driver not installed
        log.error("cannot open storage %s", e)
        return 1
    stop = threading.Event()
    reload = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            reload.set()
            return
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sentinel.start()
    except UnreadableFile as e:  # a missing htpasswd or certificate file: the key that names it
        log.error("cannot start: %s", e)
        sentinel.stop()
        return 1
    except OSError as e:  # the API port is taken, typically: one line, not a traceback
        log.error("cannot start: %s (server.listen %s)", e.strerror or e, config.server.listen)
        sentinel.stop()
        return 1
    try:
        while not stop.wait(0.5):
            if reload.is_set():
                reload.clear()
                _reload(sentinel, path)
    finally:
        sentinel.stop()
    return 0


def _reload(sentinel: Any, path: str) -> None:
    """Apply the file's new config, or keep the running one: never stops the daemon."""
    from sentinel.config import load

    log.info("SIGHUP: reloading %s", path)
    try:
        new = load(path)
        refused = _refused(new)
        if refused:
            raise ConfigError(refused)
    except ConfigError as e:
        log.error("reload failed, keeping the running configuration (%d error(s))", len(e.errors))
        for line in e.errors:
            log.error("config: %s", line)
        return
    except Exception as e:  # whatever it was, the pager keeps running on what it had
        log.error("reload failed, keeping the running configuration: %s: %s", type(e).__name__, e)
        log.debug("reload failure", exc_info=True)
        return
    try:
        sentinel.reload(new)
    except Exception as e:
        log.error("reload failed while applying the new configuration: %s: %s", type(e).__name__, e)
        log.debug("reload failure", exc_info=True)
