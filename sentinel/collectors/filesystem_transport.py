"""kombu's filesystem transport, made safe for several processes sharing one folder.

Stock kombu creates a message file, then locks it and writes it. A consumer listing the folder
in between takes the still empty file, fails to decode it and dies ("Expecting value: line 1
column 1", celery/kombu#1551), and the message is lost. With a producer, two workers and
sentinel on one folder that happens within a minute. This transport:

- writes each message under a temporary name and renames it into place, so a reader only ever
  sees whole files;
- claims a message by renaming it inside the folder (atomic, so of two consumers exactly one
  wins; kombu's move to the temp dir is a copy when that is another filesystem), then reads it
  under a shared lock, retrying briefly, so it copes with stock kombu writers too.

File names and bindings are kombu's, so processes on the stock transport interoperate.
Select it with Celery's `broker_transport` (sentinel does, for every filesystem:// broker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("sentinel.transport")

TRANSPORT = "sentinel.collectors.filesystem_transport:Transport"
TORN_READ_WAIT = 2.0  # how long a stock kombu writer may take between create and write


def transport_for(broker_url: str) -> str | None:
    """The kombu transport to use for a broker URL; None keeps kombu's choice."""
    return TRANSPORT if broker_url.partition("://")[0] == "filesystem" else None


def _read_whole(path: str) -> Any | None:
    """The decoded message, or None if it is still not valid JSON after TORN_READ_WAIT."""
    deadline = time.monotonic() + TORN_READ_WAIT
    while True:
        with open(path, "rb") as f:
            filesystem.lock(f, filesystem.LOCK_SH)  # a stock writer holds LOCK_EX as it writes
            try:
                data = f.read()
            finally:
                filesystem.unlock(f)
        try:
            return loads(bytes_to_str(data))
        except ValueError:
            if time.monotonic() >= deadline:
                return None
        time.sleep(0.01)


class Channel(filesystem.Channel):
    # kombu's own filesystem.Channel._put (queue, payload) differs from AbstractChannel's
    # (queue, message); this one keeps the channel it replaces.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        # A leading dot and no `.msg` ending: no reader's `<ts>_<uuid>.<queue>.msg` matches it.
        tmp = os.path.join(folder, f".{name}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, os.path.join(folder, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for filename in sorted(os.listdir(folder)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(folder, f".{filename}.claimed")
            try:
                os.rename(os.path.join(folder, filename), claimed)
            except OSError:
                continue  # another consumer was first
            payload = _read_whole(claimed)
            if payload is None:
                bad = os.path.join(folder, f".{filename}.bad")
                with contextlib.suppress(OSError):
                    os.rename(claimed, bad)
                log.warning("skipped a message that is not valid JSON; kept as %s", bad)
                continue
            try:
                if self.store_processed:
                    shutil.move(claimed, os.path.join(self.processed_folder, filename))
                else:
                    os.unlink(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot remove {claimed!r} after reading it") from exc
            return payload
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
