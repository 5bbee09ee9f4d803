"""`sentinel check`: the errors and warnings of a configuration, never an exception."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentinel.config.loader import ConfigError, fmt_path, load_yaml
from sentinel.config.schema import Config, validate
from sentinel.units import brief


@dataclass(frozen=True)
class Report:
    """What `sentinel check` prints: a Config or every error, and warnings either way."""

    config: Config | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def check_raw(raw: dict[str, Any], env: Mapping[str, str] | None = None) -> Report:
    try:
        config = validate(raw, env)
    except ConfigError as e:
        return Report(None, tuple(e.errors))
    except Exception as e:  # a bug of ours; the fuzz harness asserts this line never appears
        return Report(None, (f"(top level): {INTERNAL_ERROR}: {type(e).__name__}: {e}",))
    if config.celery.app is not None:
        from sentinel.collectors.beat_schedule import resolve

        try:
            resolve(config)  # imports the app: only when a rule needs its beat_schedule
        except ConfigError as e:
            return Report(None, tuple(e.errors))
    return Report(config, (), tuple(lint(config)))


def check(text: str, env: Mapping[str, str] | None = None) -> Report:
    """Validate a config text: the function behind `sentinel check`; never raises."""
    try:
        raw = load_yaml(text)
    except ConfigError as e:
        return Report(None, tuple(e.errors))
    return check_raw(raw, env)


INTERNAL_ERROR = "internal error while checking the configuration (please report it)"


def secret_problems(config: Config, *, routed_only: bool = False) -> list[str]:
    """`channels.NAME.KEY: reason` for each empty or placeholder secret of a channel."""
    routed = config.route.channel_names(config.receivers) if config.route is not None else set()
    out = []
    for name, channel in config.channels.items():
        if routed_only and name not in routed:
            continue
        for key, reason in channel.placeholder_secrets():
            where = fmt_path(("channels", name, key))
            if name in routed:
                out.append(
                    f"{where}: {reason}; the route sends to {brief(name)}, which cannot deliver"
                )
            else:
                out.append(
                    f"{where}: {reason}; {brief(name)} cannot deliver (it is not routed yet)"
                )
    return out


def lint(config: Config, *, unrouted: bool = True) -> list[str]:
    """Warnings for a valid config that would still not page anyone (`unrouted`: also the
    secrets of channels no route uses, which `run` does not need)."""
    warnings: list[str] = []
    if not config.model_fields_set:
        warnings.append(
            "(top level): the configuration is empty: no rules, no channels; sentinel would "
            "watch and page nothing"
        )
    if config.rules and (config.route is None or not config.route.channel_names(config.receivers)):
        warnings.append(
            f"route: {len(config.rules)} rule(s) but no route sends anywhere: alerts are "
            "evaluated and shown, never sent (add `route: {channels: [...]}`)"
        )
    warnings.extend(secret_problems(config, routed_only=not unrouted))
    return warnings
