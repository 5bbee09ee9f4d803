"""Channels: one module per type, each holding its schema (with its secret fields) and its
sender, declared as `KIND`. CHANNELS is the only list of types: a new channel is
`channels/<type>.py` plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentinel.channels import email, log, pagerduty, slack, webhook
from sentinel.channels.base import ChannelBase, ChannelKind, Notifier

CHANNELS: dict[str, ChannelKind] = {
    k.type: k for k in (slack.KIND, pagerduty.KIND, email.KIND, webhook.KIND, log.KIND)
}


def channel_schemas(
    registry: Mapping[str, ChannelKind] = CHANNELS,
) -> tuple[type[ChannelBase], ...]:
    """The members of the config's channel union, in registry order."""
    return tuple(k.schema for k in registry.values())


CHANNEL_SCHEMAS = channel_schemas()


def secret_keys(registry: Mapping[str, ChannelKind] = CHANNELS) -> frozenset[str]:
    """Every channel field that holds a secret: the keys a `<key>_file` may fill."""
    return frozenset(key for k in registry.values() for key in k.schema.SECRETS)


def build(name: str, config: Any, registry: Mapping[str, ChannelKind] = CHANNELS) -> Notifier:
    """A notifier for channel `name` of rules.yaml, from its validated config."""
    return registry[config.type].notifier(name, config)
