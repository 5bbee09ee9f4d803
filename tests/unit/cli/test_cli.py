"""The command line's own logic (the commands themselves are run end to end elsewhere)."""

from __future__ import annotations

import logging

from sentinel.cli import _parser
from sentinel.cli.eval import _NoTransitions


def test_eval_drops_transition_records_and_keeps_the_rest() -> None:
    quiet = _NoTransitions()
    transition = logging.makeLogRecord(
        {"msg": "alert X inactive -> firing", "levelno": logging.WARNING, "to_state": "firing"}
    )
    other = logging.makeLogRecord({"msg": "inspect: no reply", "levelno": logging.WARNING})
    assert not quiet.filter(transition)
    assert quiet.filter(other)


def test_demo_default_is_one_short_cycle() -> None:
    args = _parser().parse_args(["demo"])
    assert args.duration == "90s"
    assert args.config is None
