"""The top-level schema of rules.yaml: strict, frozen pydantic models for each section, with the
rule and channel unions assembled from their registries; `validate` runs the loader's
expansion, the cross-checks and the models, and reports every problem at once."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import socket
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from sentinel.channels import CHANNEL_SCHEMAS, CHANNELS, channel_schemas, secret_keys
from sentinel.channels.base import ChannelBase
from sentinel.config.errors import error_lines
from sentinel.config.loader import (
    ConfigError,
    expand,
    fmt_path,
    load_yaml,
    read_config,
)
from sentinel.fields import (
    BucketWidth,
    InflightCap,
    MemoryMiB,
    Period,
    PositiveWait,
    SeriesCap,
    Strict,
    Timeout,
    Wait,
)
from sentinel.model import Severity
from sentinel.record.size import parse_size
from sentinel.rules import RULE_SCHEMAS, RULES, reads_rings, schemas
from sentinel.rules.base import RuleBase
from sentinel.units import brief

# The fields a `<key>_file` may hold: every channel schema's secrets, from the registry.
# server.read_token is one too (`read_token_file:`).
SECRET_KEYS = secret_keys(CHANNELS) | {"read_token"}

# --- celery, evaluation, storage, server, limits -------------------------------------------


class CeleryConfig(Strict):
    broker_url: str = "redis://localhost:6379/0"
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    queues: tuple[str, ...] = ("celery",)
    inspect_interval: Period = 30.0
    inspect_timeout: Timeout = 5.0
    enable_events: bool = True
    # The project's Celery app ("proj.celery:app"), imported for its beat_schedule only:
    # periodic_task rules that give no `every` take it from there.
    app: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")

    @field_validator("broker_url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.partition("://")[0]
        allowed = ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory")
        if scheme not in allowed:
            raise ValueError(f"unsupported broker scheme {brief(scheme)}; use one of {allowed}")
        return v

    @field_validator("broker_transport_options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        # Passed to kombu as they are; a non-finite or absurd number there (a polling_interval
        # of 1e300) would stall the event stream, so only sane numbers get through.
        for key, value in v.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key}: must be a finite number")
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if key in _TRANSPORT_SECONDS:
                if not number:
                    raise ValueError(f"{key}: must be a number of seconds, got {brief(value)}")
                if not 0 <= value <= 3600:
                    raise ValueError(f"{key}: must be between 0 and 3600 (seconds)")
            if number and abs(value) > 10**9:
                raise ValueError(f"{key}: must be between -1e9 and 1e9")
        return v


# kombu transport options that are sleeps or timeouts in seconds.
_TRANSPORT_SECONDS = frozenset(
    {"polling_interval", "socket_timeout", "socket_connect_timeout", "health_check_interval"}
)


class EvaluationConfig(Strict):
    interval: Period = 15.0


class HistoryRetention(Strict):
    """How much notification history is kept: the maintenance job deletes rows past either."""

    keep: PositiveWait = 30 * 86_400.0
    # Rows live in the database and its in-memory copy: ~0.5 KiB each, ~10 MiB at the default.
    max_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 20_000


class StorageConfig(Strict):
    path: str = "./sentinel.db"  # SQLite, the embedded default
    url: SecretStr | None = None  # PostgreSQL, shared by replicas (instead of path)
    notification_history: HistoryRetention = Field(default_factory=HistoryRetention)

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        if not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL")
        # Checked here, not at start: `sentinel check` says so before a deployment does.
        if not all(importlib.util.find_spec(m) for m in ("psycopg", "psycopg_pool")):
            raise ValueError("needs the PostgreSQL driver: pip install 'sentinel-celery[postgres]'")
        return v

    @model_validator(mode="after")
    def _one_engine(self) -> StorageConfig:
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError("set either path (SQLite) or url (PostgreSQL), not both")
        return self


class HaConfig(Strict):
    """Replicas sharing storage.url: every one collects and evaluates, the lease holder sends."""

    enabled: bool = False
    lease: Period = 15.0  # the leader stops sending before it runs out; a follower then takes it
    replica: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)


class ServerConfig(Strict):
    listen: str = "127.0.0.1:9808"
    token: SecretStr | None = None
    # Where users reach sentinel (links in pages; its path is the prefix behind a proxy).
    # It fills Alertmanager's externalURL and each alert's generatorURL.
    external_url: str | None = None
    read_token: SecretStr | None = None  # protects the page and reads (Bearer, or the page's form)
    basic_auth_file: str | None = None  # htpasswd-style `user:bcrypt-hash` lines
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme, sep, rest = v.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or rest.startswith("/"):
            raise ValueError(f"expected http(s)://host[:port][/path], got {brief(v)}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @property
    def path_prefix(self) -> str:
        """The path of external_url ("" or "/sentinel"): where a reverse proxy mounts us."""
        if not self.external_url:
            return ""
        rest = self.external_url.partition("://")[2]
        _host, slash, path = rest.partition("/")
        return f"/{path}".rstrip("/") if slash else ""

    @property
    def base_url(self) -> str:
        """external_url, or http(s)://<listen> when it is not set."""
        if self.external_url:
            return self.external_url
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{self.listen}"

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {brief(v)}")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class RecordConfig(Strict):
    """A rolling recording kept by `sentinel run` (segments in a folder, see sentinel.record)."""

    path: str  # a folder: one segment file per hour at most
    keep: PositiveWait = 86_400.0
    max_size: Annotated[int, BeforeValidator(parse_size), Field(le=1 << 40)] = 1 << 30


class LimitsConfig(Strict):
    """Caps that bound memory whatever the traffic; past a cap new series are counted, not kept."""

    max_task_names: SeriesCap = 10_000
    max_workers: SeriesCap = 2_000
    max_queues: SeriesCap = 2_000
    max_inflight_tasks: InflightCap = 200_000
    max_running_tasks: InflightCap = 100_000  # started, not finished (stuck_task, lost_task)
    max_lost_tasks: InflightCap = 10_000  # lost with their worker, kept for lost_task's window
    # /metrics' task label sets: (name, hostname, queue_name), and each exception class seen
    # failing one; ~1 KiB each. Past it, new ones are counted as dropped (metric_label_cap).
    max_metric_label_sets: SeriesCap = 20_000
    bucket: BucketWidth = 10.0  # width of one time bucket in windows
    worker_retention: Wait = 3600.0  # forget a worker this long after it was last alive
    # Budget for the windows' counters and latency bins (all task names together); past it the
    # oldest time bucket of every series is forgotten first, counted as dropped.
    max_window_mib: MemoryMiB = 48
    # The status page's value history: one ring of `history_points` evaluations per alert label
    # set (and per queue), at most `max_history_series` of them; about 5 bytes a point.
    max_history_series: SeriesCap = 10_000
    history_points: Annotated[int, Field(ge=2, le=10_000)] = 240


# --- rules -----------------------------------------------------------------------------------


def rule_spec(kinds: tuple[type[RuleBase], ...]) -> Any:
    """The discriminated union of the configurable rule kinds (the registry's schemas)."""
    return Annotated[Union[kinds], Field(discriminator="kind")]  # noqa: UP007


if TYPE_CHECKING:
    from sentinel.notify.timeintervals import TimeInterval

if TYPE_CHECKING:  # the union is the registry's, built at import; a checker sees its base
    RuleSpec = RuleBase
else:
    RuleSpec = rule_spec(RULE_SCHEMAS)


class Defaults(Strict):
    for_: Wait = Field(0.0, alias="for")
    severity: Severity | None = None
    labels: dict[str, str] = Field(default_factory=dict)


# --- routing, inhibition -------------------------------------------------------------------


def _check_regexes(v: dict[str, str]) -> dict[str, str]:
    for key, pattern in v.items():
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"{brief(key)}: invalid regular expression {brief(pattern)}: {e}"
            ) from None
        except (RecursionError, OverflowError) as e:  # ((((...)))), a{99999999999}
            raise ValueError(f"{brief(key)}: regular expression too large: {e}") from None
    return v


def _check_matchers(v: tuple[str, ...]) -> tuple[str, ...]:
    from sentinel.notify.matchers import MatcherError, parse_config_matchers

    try:
        parse_config_matchers(v)
    except MatcherError as e:
        message = str(e)  # it quotes the matcher, which may be any size: keep the line short
        raise ValueError(message if len(message) <= 300 else f"{message[:299]}…") from None
    except (RecursionError, OverflowError) as e:  # ((((...)))), a{99999999999}
        raise ValueError(f"regular expression too large: {e}") from None
    return v


class Route(Strict):
    """A node of the routing tree, in sentinel's spelling (`match`, `match_re`, `channels`) or
    Alertmanager's (`matchers`, `receiver`); both may be mixed, as in Alertmanager."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    matchers: tuple[str, ...] = ()
    channels: tuple[str, ...] | None = None
    receiver: str | None = None
    group_by: tuple[str, ...] | None = None
    group_wait: Wait | None = None
    group_interval: PositiveWait | None = None
    repeat_interval: PositiveWait | None = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    continue_: bool = Field(False, alias="continue")
    routes: tuple[Route, ...] = ()

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_regexes(v)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(v)

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        if self.receiver is not None and self.channels is not None:
            raise ValueError("give either receiver or channels, not both")
        return self

    def channel_names(self, receivers: Mapping[str, tuple[str, ...]] | None = None) -> set[str]:
        """The channels this subtree sends to; `receivers` maps `receiver:` names to channels
        (a name it does not hold is the channel of that name)."""
        names = set(self.channels or ())
        if self.receiver is not None:
            names |= set((receivers or {}).get(self.receiver, (self.receiver,)))
        for child in self.routes:
            names |= child.channel_names(receivers)
        return names


class InhibitRule(Strict):
    """`source`/`target` (+ `_re`) in sentinel's spelling, `source_matchers`/`target_matchers`
    in Alertmanager's; each side's matchers are all of those given."""

    source: dict[str, str] = Field(default_factory=dict)
    source_re: dict[str, str] = Field(default_factory=dict)
    source_matchers: tuple[str, ...] = ()
    target: dict[str, str] = Field(default_factory=dict)
    target_re: dict[str, str] = Field(default_factory=dict)
    target_matchers: tuple[str, ...] = ()
    # Alertmanager's spelling takes the same keys under their deprecated names too.
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: tuple[str, ...] = ()

    @field_validator("source_re", "target_re", "source_match_re", "target_match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_regexes(v)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _matchers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(v)

    @model_validator(mode="after")
    def _not_empty(self) -> InhibitRule:
        source = self.source or self.source_re or self.source_matchers
        target = self.target or self.target_re or self.target_matchers
        source = source or self.source_match or self.source_match_re
        target = target or self.target_match or self.target_match_re
        if not source or not target:
            raise ValueError("needs both a source and a target matcher")
        return self


# --- channels ------------------------------------------------------------------------------


def channel_spec(kinds: tuple[type[ChannelBase], ...]) -> Any:
    """The discriminated union of the channel types (the channel registry's schemas)."""
    return Annotated[Union[kinds], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    ChannelSpec = ChannelBase
else:
    ChannelSpec = channel_spec(CHANNEL_SCHEMAS)


class Config(Strict):
    celery: CeleryConfig = Field(default_factory=lambda: CeleryConfig.model_validate({}))
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ha: HaConfig = Field(default_factory=HaConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    record: RecordConfig | None = None
    defaults: Defaults = Field(default_factory=lambda: Defaults.model_validate({}))
    rules: tuple[RuleSpec, ...] = ()
    route: Route | None = None
    inhibit: tuple[InhibitRule, ...] = ()
    # Alertmanager's names for what a pasted alertmanager.yml holds: `inhibit_rules` is read as
    # `inhibit`; `receivers` maps a route's `receiver:` to channels (a receiver not listed here
    # is the channel of that name).
    receivers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    time_intervals: tuple[dict[str, Any], ...] = ()
    mute_time_intervals: tuple[dict[str, Any], ...] = ()  # Alertmanager's deprecated name
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _inhibit_rules(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "inhibit_rules" in data:
            data = dict(data)
            if "inhibit" in data:
                raise ValueError("give either inhibit or inhibit_rules, not both")
            data["inhibit"] = data.pop("inhibit_rules")
        return data

    @field_validator("time_intervals")
    @classmethod
    def _intervals(cls, v: tuple[dict[str, Any], ...]) -> Any:
        from sentinel.notify.timeintervals import parse_time_intervals

        parse_time_intervals(v)  # its ValueError names the offending path
        return v

    @field_validator("mute_time_intervals")
    @classmethod
    def _old_intervals(cls, v: tuple[dict[str, Any], ...], info: ValidationInfo) -> Any:
        from sentinel.notify.timeintervals import parse_time_intervals

        parse_time_intervals(info.data.get("time_intervals", ()), v)  # names unique across both
        return v

    def intervals(self) -> Mapping[str, tuple[TimeInterval, ...]]:
        """The named time intervals, parsed (validated already, so this cannot fail)."""
        from sentinel.notify.timeintervals import parse_time_intervals

        return parse_time_intervals(self.time_intervals, self.mute_time_intervals)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Config:
        if self.ha.enabled and self.storage.url is None:
            raise ValueError(
                "ha.enabled needs storage.url (a PostgreSQL database the replicas share)"
            )
        if info.context and info.context.get("cross_checked"):
            return self  # parse() already checked the raw mapping, with every other error
        problems = _cross_check(self.model_dump(by_alias=True))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def max_window(self) -> float:
        """The task series' ring retention: the longest window of the kinds that read them."""
        windows = [getattr(r, "window", 0.0) for r in self.rules if reads_rings(r.kind)]
        return max([*windows, 60.0])

    @property
    def max_fact_window(self) -> float:
        """How long the other windowed facts (lost tasks, restarts) are kept."""
        windows = [getattr(r, "window", 0.0) for r in self.rules]
        return max([*windows, 60.0])


def _cross_check(raw: Mapping[str, Any]) -> list[str]:
    """Checks that span sections: unique rule names, routes naming defined channels.

    Run on the raw mapping by parse(), so they are reported along with every field error
    (a model validator only runs once all fields are valid) and with the offending path.
    """
    errors: list[str] = []
    rules = raw.get("rules")
    if isinstance(rules, list | tuple):
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, Mapping) else None
            if not isinstance(name, str):
                continue
            if name in first:
                errors.append(
                    f"rules[{i}].name: {brief(name)} is already used by rules[{first[name]}]"
                )
            else:
                first[name] = i
        celery = raw.get("celery")
        app = celery.get("app") if isinstance(celery, Mapping) else None
        for i, rule in enumerate(rules):
            if (
                isinstance(rule, Mapping)
                and rule.get("kind") == "periodic_task"
                and rule.get("every") is None
                and not app
            ):
                errors.append(
                    f"rules[{i}].every: required unless celery.app names the Celery app whose"
                    " beat_schedule gives it"
                )
    route, channels = raw.get("route"), raw.get("channels")
    receivers = raw.get("receivers")
    receivers = receivers if isinstance(receivers, Mapping) else {}
    if isinstance(route, Mapping) and isinstance(channels, Mapping | None):
        defined = set(channels or ())
        intervals = _interval_names(raw)
        for name, targets in receivers.items():
            if isinstance(targets, list | tuple):
                for j, target in enumerate(targets):
                    if isinstance(target, str) and target not in defined:
                        where = fmt_path(("receivers", name, j))
                        errors.append(f"{where}: undefined channel {brief(target)}")

        def walk(node: Mapping[str, Any], path: tuple[Any, ...]) -> None:
            names = node.get("channels")
            if isinstance(names, list | tuple):
                for j, name in enumerate(names):
                    if isinstance(name, str) and name not in defined:
                        where = fmt_path((*path, "channels", j))
                        errors.append(f"{where}: undefined channel {brief(name)}")
            receiver = node.get("receiver")
            if isinstance(receiver, str) and receiver not in receivers and receiver not in defined:
                errors.append(
                    f"{fmt_path((*path, 'receiver'))}: undefined receiver {brief(receiver)} "
                    "(name a channel, or map it under receivers:)"
                )
            for key in ("mute_time_intervals", "active_time_intervals"):
                listed = node.get(key)
                if intervals is None or not isinstance(listed, list | tuple):
                    continue
                if listed and not path[1:]:
                    errors.append(f"{fmt_path((*path, key))}: the root route cannot have any")
                for j, name in enumerate(listed):
                    if isinstance(name, str) and name not in intervals:
                        where = fmt_path((*path, key, j))
                        errors.append(f"{where}: undefined time interval {brief(name)}")
            children = node.get("routes")
            if isinstance(children, list | tuple):
                for k, child in enumerate(children):
                    if isinstance(child, Mapping):
                        walk(child, (*path, "routes", k))

        walk(route, ("route",))
    return errors


def _interval_names(raw: Mapping[str, Any]) -> set[str] | None:
    """The names `time_intervals` and `mute_time_intervals` define; None when either is
    malformed (its own error is reported; undefined names would only repeat it)."""
    names: set[str] = set()
    for key in ("time_intervals", "mute_time_intervals"):
        entries = raw.get(key) or ()
        if not isinstance(entries, list | tuple):
            return None
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                return None
            names.add(entry["name"])
    return names


# --- loading -------------------------------------------------------------------------------


def _apply_defaults(raw: dict[str, Any]) -> None:
    defaults = raw.get("defaults") or {}
    rules = raw.get("rules")
    if not isinstance(defaults, dict) or not isinstance(rules, list):
        return
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        if "for" in defaults:
            rule.setdefault("for", defaults["for"])
        if defaults.get("severity") is not None:
            rule.setdefault("severity", defaults["severity"])
        if isinstance(defaults.get("labels"), dict) and isinstance(rule.get("labels", {}), dict):
            rule["labels"] = {**defaults["labels"], **(rule.get("labels") or {})}


@cache
def _model(
    rules: tuple[type[RuleBase], ...], channels: tuple[type[ChannelBase], ...]
) -> type[Config]:
    if rules == RULE_SCHEMAS and channels == CHANNEL_SCHEMAS:
        return Config
    # A registry that changed since import (a test's throwaway kind or channel): the same
    # Config with that registry's unions.
    rule_union: Any = rule_spec(rules)
    channel_union: Any = channel_spec(channels)
    return create_model(
        "Config",
        __base__=Config,
        rules=(tuple[rule_union, ...], ()),
        channels=(dict[str, channel_union], Field(default_factory=dict)),
    )


def config_model() -> type[Config]:
    """Config, with the rule and channel unions of the registries as they are now."""
    return _model(schemas(RULES), channel_schemas(CHANNELS))


def validate(raw: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """A Config from a loaded mapping (see loader.load_yaml), or ConfigError with every problem."""
    errors: list[str] = []
    raw = expand(raw, (), os.environ if env is None else env, errors, secret_keys(CHANNELS))
    _apply_defaults(raw)
    errors.extend(_cross_check(raw))
    try:
        config = config_model().model_validate(raw, context={"cross_checked": True})
    except ValidationError as e:
        errors.extend(error_lines(e, raw))
        raise ConfigError(errors) from None
    if errors:
        raise ConfigError(errors)
    return config


def parse(text: str, env: Mapping[str, str] | None = None, source: str = "<config>") -> Config:
    return validate(load_yaml(text), env)


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    return validate(read_config(path), env)
