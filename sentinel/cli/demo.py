"""`sentinel demo`: a local cluster, a scenario and a console (sentinel/demo/)."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> int:
    from sentinel.demo.main import run_demo

    return run_demo(args)
