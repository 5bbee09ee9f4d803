"""What every command that reads a configuration shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sentinel.config.loader import ConfigError, default_path, read_config

if TYPE_CHECKING:
    from sentinel.config import Config


def print_errors(path: str, errors: Sequence[str]) -> None:
    print(f"{path}: invalid configuration ({len(errors)} error(s))", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def load_config(args: argparse.Namespace) -> Config | None:
    """The config named by -c (or the default), or None after printing every error."""
    path = args.config or default_path()
    try:
        raw = read_config(path)
        from sentinel.config import validate

        return validate(raw)
    except ConfigError as e:
        print_errors(path, e.errors)
        return None
