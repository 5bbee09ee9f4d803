"""rules.yaml: strict, frozen pydantic models, environment expansion, `<key>_file` secrets.

`load(path)` returns a Config or raises ConfigError carrying every problem found, each as
`path.to[2].key: reason`, so `sentinel check` can list them all at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sentinel.model import Severity
from sentinel.units import format_duration, parse_duration, parse_ratio

Duration = Annotated[float, BeforeValidator(parse_duration)]
Ratio = Annotated[float, BeforeValidator(parse_ratio)]
Globs = tuple[str, ...]

SECRET_KEYS = frozenset({"token", "routing_key", "password", "url"})
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _check_template(source: str, what: str) -> None:
    """Reject a Jinja2 syntax error at load time rather than sending it to a channel."""
    try:
        jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"{what}: invalid Jinja2 (line {e.lineno}): {e.message}") from None


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- celery, evaluation, storage, server, limits -------------------------------------------


class CeleryConfig(Strict):
    broker_url: str = "redis://localhost:6379/0"
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    queues: tuple[str, ...] = ("celery",)
    inspect_interval: Duration = 30.0
    inspect_timeout: Duration = 5.0
    enable_events: bool = True

    @field_validator("broker_url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.partition("://")[0]
        allowed = ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory")
        if scheme not in allowed:
            raise ValueError(f"unsupported broker scheme {scheme!r}; use one of {allowed}")
        return v

    @field_validator("inspect_interval", "inspect_timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v


class EvaluationConfig(Strict):
    interval: Duration = 15.0

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v


class StorageConfig(Strict):
    path: str = "./sentinel.db"


class ServerConfig(Strict):
    listen: str = "127.0.0.1:9808"
    token: SecretStr | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {v!r}")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class LimitsConfig(Strict):
    """Caps that bound memory whatever the traffic; past a cap new series are counted, not kept."""

    max_task_names: int = Field(10_000, gt=0)
    max_workers: int = Field(2_000, gt=0)
    max_queues: int = Field(2_000, gt=0)
    max_inflight_tasks: int = Field(200_000, gt=0)
    bucket: Duration = 10.0  # width of one time bucket in windows
    worker_retention: Duration = 3600.0  # forget a worker this long after it was last alive
    # Budget for the windows' counters and latency bins (all task names together); past it the
    # oldest time bucket of every series is forgotten first, counted as dropped.
    max_window_mib: int = Field(48, gt=0)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: float) -> float:
        if v < 1:
            raise ValueError("must be at least 1s")
        return v


# --- rules -----------------------------------------------------------------------------------


class RuleBase(Strict):
    name: str = Field(pattern=_NAME)
    for_: Duration = Field(0.0, alias="for")
    severity: Severity = Severity.WARNING
    summary: str | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(_NAME, key):
                raise ValueError(f"label name {key!r} must match {_NAME}")
            if key in ("alertname", "severity"):
                raise ValueError(f"label {key!r} is set by sentinel and cannot be overridden")
        return v

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            _check_template(v, "template")
        return v

    def describe(self) -> str:
        """One line for `sentinel check`."""
        return ""


class NoLiveWorkersRule(RuleBase):
    kind: Literal["no_live_workers"]
    workers: Globs = ("*",)
    min_workers: int = Field(1, gt=0)

    def describe(self) -> str:
        return f"fewer than {self.min_workers} live worker(s) matching {list(self.workers)}"


class QueueBacklogRule(RuleBase):
    kind: Literal["queue_backlog"]
    queues: Globs = ("*",)
    threshold: int = Field(gt=0)

    def describe(self) -> str:
        return f"queue depth > {self.threshold} for queues {list(self.queues)}"


class FailureRateRule(RuleBase):
    kind: Literal["failure_rate"]
    tasks: Globs = ("*",)
    window: Duration = 300.0
    threshold: Ratio
    min_count: int = Field(20, ge=1)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if v <= 0 or v >= 1:
            raise ValueError("must be > 0% and < 100%")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v

    def describe(self) -> str:
        return (
            f"failure rate > {self.threshold:.2%} over {format_duration(self.window)} "
            f"(min {self.min_count}) for tasks {list(self.tasks)}"
        )


class IdleWorkerRule(RuleBase):
    kind: Literal["idle_worker"]
    workers: Globs = ("*",)
    idle_for: Duration

    @field_validator("idle_for")
    @classmethod
    def _idle(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v

    def describe(self) -> str:
        return f"live worker with no task started for {format_duration(self.idle_for)}"


class TaskLatencyRule(RuleBase):
    kind: Literal["task_latency"]
    tasks: Globs = ("*",)
    measure: Literal["queue_wait", "runtime", "total"] = "total"
    percentile: float = Field(95.0, gt=0, lt=100)
    threshold: Duration
    window: Duration = 600.0
    min_count: int = Field(10, ge=1)

    @field_validator("threshold", "window")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v

    def describe(self) -> str:
        return (
            f"p{self.percentile:g} {self.measure} > {format_duration(self.threshold)} over "
            f"{format_duration(self.window)} (min {self.min_count}) for tasks {list(self.tasks)}"
        )


class BrokerUnreachableRule(RuleBase):
    kind: Literal["broker_unreachable"]

    def describe(self) -> str:
        return "the broker cannot be reached (events, inspect or queue depth probe failing)"


RuleSpec = Annotated[
    NoLiveWorkersRule
    | QueueBacklogRule
    | FailureRateRule
    | IdleWorkerRule
    | TaskLatencyRule
    | BrokerUnreachableRule,
    Field(discriminator="kind"),
]


class Defaults(Strict):
    for_: Duration = Field(0.0, alias="for")
    severity: Severity | None = None
    labels: dict[str, str] = Field(default_factory=dict)


# --- routing, inhibition -------------------------------------------------------------------


def _check_regexes(v: dict[str, str]) -> dict[str, str]:
    for key, pattern in v.items():
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{key}: invalid regular expression {pattern!r}: {e}") from None
    return v


class Route(Strict):
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    channels: tuple[str, ...] | None = None
    group_by: tuple[str, ...] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple[Route, ...] = ()

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_regexes(v)

    def channel_names(self) -> set[str]:
        names = set(self.channels or ())
        for child in self.routes:
            names |= child.channel_names()
        return names


class InhibitRule(Strict):
    source: dict[str, str] = Field(default_factory=dict)
    source_re: dict[str, str] = Field(default_factory=dict)
    target: dict[str, str] = Field(default_factory=dict)
    target_re: dict[str, str] = Field(default_factory=dict)
    equal: tuple[str, ...] = ()

    @field_validator("source_re", "target_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_regexes(v)

    @model_validator(mode="after")
    def _not_empty(self) -> InhibitRule:
        if not (self.source or self.source_re) or not (self.target or self.target_re):
            raise ValueError("needs both a source and a target matcher")
        return self


# --- channels ------------------------------------------------------------------------------


class ChannelBase(Strict):
    send_resolved: bool = True
    templates: dict[str, str] = Field(default_factory=dict)  # per-channel Jinja2 overrides
    timeout: Duration = 10.0
    # Sends to this channel in flight at once, each for a different group (one group's
    # notifications stay in order): a slow receiver then delays only the groups it holds.
    max_in_flight: int = Field(16, ge=1, le=256)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for name, source in v.items():
            _check_template(source, f"templates.{name}")
        return v

    def describe(self) -> str:
        return ""


class SlackChannel(ChannelBase):
    type: Literal["slack"]
    token: SecretStr
    channel: str
    api_url: str = "https://slack.com/api/"

    def describe(self) -> str:
        return f"slack {self.channel} via {self.api_url}"


class PagerDutyChannel(ChannelBase):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str | None = None

    def describe(self) -> str:
        return f"pagerduty events v2 via {self.url}"


class EmailChannel(ChannelBase):
    type: Literal["email"]
    host: str
    port: int = Field(587, gt=0, lt=65536)
    starttls: bool = True  # defaults to false when ssl is true
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _starttls_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "starttls" not in data and data.get("ssl") is True:
            return {**data, "starttls": False}
        return data

    @model_validator(mode="after")
    def _tls(self) -> EmailChannel:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls are exclusive: ssl is TLS from the start")
        return self

    def describe(self) -> str:
        return f"email {', '.join(self.to)} via {self.host}:{self.port}"


class WebhookChannel(ChannelBase):
    type: Literal["webhook"]
    url: SecretStr
    format: Literal["alertmanager", "template"] = "alertmanager"
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_alerts: int = Field(0, ge=0)  # 0 = all, as in Alertmanager

    @model_validator(mode="after")
    def _body(self) -> WebhookChannel:
        if self.format == "template" and not self.body:
            raise ValueError("format: template needs a body")
        if self.body:
            _check_template(self.body, "body")
        return self

    def describe(self) -> str:
        return f"webhook ({self.format}) to {_redact_url(self.url.get_secret_value())}"


class LogChannel(ChannelBase):
    type: Literal["log"]

    def describe(self) -> str:
        return "log (writes notifications to the daemon's log)"


ChannelSpec = Annotated[
    SlackChannel | PagerDutyChannel | EmailChannel | WebhookChannel | LogChannel,
    Field(discriminator="type"),
]


class Config(Strict):
    celery: CeleryConfig = Field(default_factory=CeleryConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    rules: tuple[RuleSpec, ...] = ()
    route: Route | None = None
    inhibit: tuple[InhibitRule, ...] = ()
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Config:
        if info.context and info.context.get("cross_checked"):
            return self  # parse() already checked the raw mapping, with every other error
        problems = _cross_check(self.model_dump(by_alias=True))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def max_window(self) -> float:
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
                errors.append(f"rules[{i}].name: {name!r} is already used by rules[{first[name]}]")
            else:
                first[name] = i
    route, channels = raw.get("route"), raw.get("channels")
    if isinstance(route, Mapping) and isinstance(channels, Mapping | None):
        defined = set(channels or ())

        def walk(node: Mapping[str, Any], path: tuple[Any, ...]) -> None:
            names = node.get("channels")
            if isinstance(names, list | tuple):
                for j, name in enumerate(names):
                    if isinstance(name, str) and name not in defined:
                        where = _fmt_path((*path, "channels", j))
                        errors.append(f"{where}: undefined channel {name!r}")
            children = node.get("routes")
            if isinstance(children, list | tuple):
                for k, child in enumerate(children):
                    if isinstance(child, Mapping):
                        walk(child, (*path, "routes", k))

        walk(route, ("route",))
    return errors


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    return f"{scheme}{sep}{host}/..." if sep else "..."


# --- loading -------------------------------------------------------------------------------


def _fmt_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _expand(node: Any, path: tuple[Any, ...], env: Mapping[str, str], errors: list[str]) -> Any:
    """Expand ${VAR} / ${VAR:-default} in every string and resolve `<key>_file` secrets."""
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    errors.append(f"{_fmt_path(path)}: environment variable {name} is not set")
                    return ""
                return default
            return value

        return _ENV.sub(sub, node)
    if isinstance(node, list):
        return [_expand(v, (*path, i), env, errors) for i, v in enumerate(node)]
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            out[key] = _expand(value, (*path, key), env, errors)
        for key in [k for k in out if isinstance(k, str) and k.endswith("_file")]:
            base = key[: -len("_file")]
            if base not in SECRET_KEYS:
                continue
            where = _fmt_path((*path, key))
            file_path = out.pop(key)
            if base in out:
                errors.append(f"{where}: give either {base} or {key}, not both")
                continue
            try:
                out[base] = Path(str(file_path)).read_text().strip()
            except OSError as e:
                errors.append(f"{where}: cannot read {file_path}: {e.strerror or e}")
        return out
    return node


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


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _error_lines(exc: ValidationError, raw: Any) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        # A discriminated union inserts the tag (e.g. 'failure_rate') after the item's index
        # or key; users never wrote it, so drop it from the path.
        cleaned: list[Any] = []
        node = raw
        i = 0
        while i < len(loc):
            part = loc[i]
            cleaned.append(part)
            try:
                node = node[part] if node is not None else None
            except (KeyError, IndexError, TypeError):
                node = None
            if (
                isinstance(node, dict)
                and i + 1 < len(loc)
                and loc[i + 1] in (node.get("kind"), node.get("type"))
                and loc[i + 1] not in node
            ):
                i += 1
            i += 1
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; unknown keys are not ignored)"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            tag = str(ctx.get("discriminator", "kind")).strip("'")
            cleaned.append(tag)  # the offending key is the tag itself
            msg = f"unknown {tag} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        elif err["type"] == "union_tag_not_found":
            ctx = err.get("ctx") or {}
            tag = str(ctx.get("discriminator", "kind")).strip("'")
            cleaned.append(tag)
            msg = "required"
        elif err["type"] in _BOUNDS:
            msg = (
                f"must be {_BOUNDS[err['type']]} {next(iter((err.get('ctx') or {}).values()), '')}"
            )
        elif err["type"] == "missing":
            msg = "required"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{_fmt_path(tuple(cleaned))}: {msg}")
    return lines


def parse(text: str, env: Mapping[str, str] | None = None, source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): expected a mapping, got {type(raw).__name__}"])
    errors: list[str] = []
    raw = _expand(raw, (), os.environ if env is None else env, errors)
    _apply_defaults(raw)
    errors.extend(_cross_check(raw))
    try:
        config = Config.model_validate(raw, context={"cross_checked": True})
    except ValidationError as e:
        errors.extend(_error_lines(e, raw))
        raise ConfigError(errors) from None
    if errors:
        raise ConfigError(errors)
    return config


def default_path() -> str:
    return os.environ.get("SENTINEL_CONFIG") or "./rules.yaml"


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    return parse(text, env, source=str(path))
