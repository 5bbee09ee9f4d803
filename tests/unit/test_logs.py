from __future__ import annotations

import json
import logging

from sentinel.logs import JsonFormatter


def test_json_lines_carry_structured_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "sentinel",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "alert %s firing",
            "args": ("NoLiveWorkers",),
            "labels": {"alertname": "NoLiveWorkers"},
            "to_state": "firing",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "alert NoLiveWorkers firing"
    assert line["level"] == "warning" and line["logger"] == "sentinel"
    assert line["labels"] == {"alertname": "NoLiveWorkers"} and line["to_state"] == "firing"
