"""Queue depth on kombu's filesystem transport: message files waiting in the data folder.

kombu writes each message as `<ms>_<uuid>.<queue>.msg` and a consumer takes one by moving it
out of `data_folder_in`, so the files left there are exactly the messages not yet delivered
(unacknowledged ones are gone already, as with Redis' LLEN). The name is split at its first
dot, as kombu's own `_get`/`_size` do, so queue names that contain dots count correctly.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from sentinel.collectors.queues import Depths

SUFFIX = ".msg"


class FilesystemQueueProbe:
    def __init__(self, broker_url: str, transport_options: dict[str, Any]) -> None:
        # The consumers' view: sentinel is configured like the workers, whose messages
        # arrive in data_folder_in (kombu's default, relative to the working directory).
        self.folder = str(transport_options.get("data_folder_in", "data_in"))

    def depths(self, queues: list[str]) -> tuple[Depths, dict[str, str]]:
        try:
            names = os.listdir(self.folder)
        except OSError as e:
            # A missing folder is a misconfiguration, not an empty broker.
            error = f"cannot list {self.folder}: {e.strerror or e}"
            return {}, dict.fromkeys(queues, error)
        counts = Counter(
            name.partition(".")[2][: -len(SUFFIX)] for name in names if name.endswith(SUFFIX)
        )
        return {q: (counts.get(q, 0), None) for q in queues}, {}

    def close(self) -> None:
        pass
