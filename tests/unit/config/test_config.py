from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from sentinel.channels.email import EmailChannel
from sentinel.channels.pagerduty import PagerDutyChannel
from sentinel.channels.slack import SlackChannel
from sentinel.channels.webhook import WebhookChannel
from sentinel.config import Config, ConfigError, load, parse
from sentinel.model import Severity
from sentinel.rules.failure_rate import FailureRateRule
from sentinel.rules.idle_worker import IdleWorkerRule
from sentinel.rules.no_live_workers import NoLiveWorkersRule
from sentinel.rules.queue_backlog import QueueBacklogRule
from sentinel.rules.task_latency import TaskLatencyRule

FULL = """\
celery:
  broker_url: ${CELERY_BROKER_URL:-redis://localhost:6379/0}
  broker_transport_options: {visibility_timeout: 3600}
  queues: [celery, "${EXTRA_QUEUE}"]
  inspect_interval: 30s
  inspect_timeout: 5s
  enable_events: true

evaluation:
  interval: 15s

storage:
  path: ${STATE_DIR:-/var/lib/sentinel}/sentinel.db

server:
  listen: 127.0.0.1:9808
  token: ${SENTINEL_API_TOKEN:-}

defaults:
  for: 1m
  labels: {env: prod, team: platform}

rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    for: 30s
    severity: critical
    summary: "No Celery worker has been alive for {{ for }}"
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 1000
    for: 2m
    severity: warning
    labels: {env: staging}
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["billing.*"]
    window: 5m
    threshold: 5%
    min_count: 20
    severity: error
  - name: IdleWorker
    kind: idle_worker
    idle_for: 15m
    severity: info
  - name: SlowTasks
    kind: task_latency
    tasks: ["reports.*"]
    measure: total
    percentile: 95
    threshold: 30s
    window: 10m
    min_count: 10
    severity: warning

route:
  channels: [slack]
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - match: {severity: critical}
      channels: [pagerduty, slack]
    - match_re: {task: "billing\\\\..*"}
      channels: [oncall-mail, hook]
      continue: true

inhibit:
  - source: {alertname: NoLiveWorkers}
    target: {alertname: QueueBacklog}

channels:
  slack:
    type: slack
    token_file: ${SECRETS}/slack
    channel: "#celery-alerts"
    api_url: https://slack.com/api/
  pagerduty:
    type: pagerduty
    routing_key_file: ${SECRETS}/pagerduty
    url: https://events.pagerduty.com/v2/enqueue
  oncall-mail:
    type: email
    host: smtp.example.com
    port: 587
    starttls: true
    username: sentinel
    password_file: ${SECRETS}/smtp
    from: sentinel@example.com
    to: [oncall@example.com]
  hook:
    type: webhook
    url_file: ${SECRETS}/hook
    format: alertmanager
"""


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "slack").write_text("xoxb-slack-secret\n")
    (folder / "pagerduty").write_text("pd-routing-secret")
    (folder / "smtp").write_text("  smtp-secret  \n")
    (folder / "hook").write_text("https://hooks.example.com/celery?key=hook-secret\n")
    return folder


@pytest.fixture
def env(secrets: Path) -> dict[str, str]:
    return {"SECRETS": str(secrets), "EXTRA_QUEUE": "billing", "STATE_DIR": ""}


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env or {})
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def test_full_config_parses(env: dict[str, str]) -> None:
    config = parse(FULL, env)

    assert config.celery.broker_url == "redis://localhost:6379/0"  # ${VAR:-default}, unset
    assert config.celery.queues == ("celery", "billing")  # ${VAR}
    assert config.celery.broker_transport_options == {"visibility_timeout": 3600}
    assert config.celery.inspect_interval == 30.0
    assert config.celery.inspect_timeout == 5.0
    assert config.evaluation.interval == 15.0
    assert config.storage.path == "/var/lib/sentinel/sentinel.db"  # set but empty -> default
    assert config.server.token is not None
    assert config.server.token.get_secret_value() == ""

    rules = {r.name: r for r in config.rules}
    assert [r.name for r in config.rules] == [
        "NoLiveWorkers",
        "QueueBacklog",
        "TaskFailureRate",
        "IdleWorker",
        "SlowTasks",
    ]
    nlw = rules["NoLiveWorkers"]
    assert isinstance(nlw, NoLiveWorkersRule)
    assert nlw.for_ == 30.0
    assert nlw.severity is Severity.CRITICAL
    assert nlw.summary == "No Celery worker has been alive for {{ for }}"
    backlog = rules["QueueBacklog"]
    assert isinstance(backlog, QueueBacklogRule)
    assert (backlog.queues, backlog.threshold, backlog.for_) == (("*",), 1000, 120.0)
    failure = rules["TaskFailureRate"]
    assert isinstance(failure, FailureRateRule)
    assert failure.threshold == pytest.approx(0.05)
    assert (failure.tasks, failure.window, failure.min_count) == (("billing.*",), 300.0, 20)
    idle = rules["IdleWorker"]
    assert isinstance(idle, IdleWorkerRule)
    assert idle.idle_for == 900.0
    assert idle.severity is Severity.INFO
    slow = rules["SlowTasks"]
    assert isinstance(slow, TaskLatencyRule)
    assert (slow.measure, slow.percentile, slow.threshold, slow.window, slow.min_count) == (
        "total",
        95.0,
        30.0,
        600.0,
        10,
    )

    # defaults.for applies where a rule gives none; a rule's own `for` wins
    assert failure.for_ == 60.0
    assert idle.for_ == 60.0
    assert slow.for_ == 60.0
    # defaults.labels apply to every rule; a rule's own labels override them key by key
    assert nlw.labels == {"env": "prod", "team": "platform"}
    assert backlog.labels == {"env": "staging", "team": "platform"}

    assert config.route is not None
    assert config.route.channels == ("slack",)
    assert config.route.repeat_interval == 4 * 3600.0
    assert config.route.routes[0].match == {"severity": "critical"}
    assert config.route.routes[1].match_re == {"task": "billing\\..*"}
    assert config.route.routes[1].continue_ is True
    assert config.inhibit[0].source == {"alertname": "NoLiveWorkers"}

    slack = config.channels["slack"]
    assert isinstance(slack, SlackChannel)
    assert slack.token.get_secret_value() == "xoxb-slack-secret"
    pagerduty = config.channels["pagerduty"]
    assert isinstance(pagerduty, PagerDutyChannel)
    assert pagerduty.routing_key.get_secret_value() == "pd-routing-secret"
    mail = config.channels["oncall-mail"]
    assert isinstance(mail, EmailChannel)
    assert mail.password is not None
    assert mail.password.get_secret_value() == "smtp-secret"
    assert (mail.from_, mail.to, mail.port) == (
        "sentinel@example.com",
        ("oncall@example.com",),
        587,
    )
    hook = config.channels["hook"]
    assert isinstance(hook, WebhookChannel)
    assert hook.url.get_secret_value() == "https://hooks.example.com/celery?key=hook-secret"

    assert config.max_window == 600.0


def test_secrets_are_secretstr_and_never_shown(env: dict[str, str]) -> None:
    config = parse(FULL, {**env, "SENTINEL_API_TOKEN": "api-secret"})
    assert isinstance(config.server.token, SecretStr)
    shown = repr(config) + str(config) + repr(config.channels) + str(config.model_dump())
    for secret in ("api-secret", "xoxb-slack-secret", "pd-routing-secret", "smtp-secret"):
        assert secret not in shown
    assert "hook-secret" not in shown
    assert "hook-secret" not in config.channels["hook"].describe()


def test_load_reads_a_file_and_uses_the_environment(
    tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRETS", str(secrets))
    monkeypatch.setenv("EXTRA_QUEUE", "mail")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://rabbit:5672//")
    monkeypatch.delenv("STATE_DIR", raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text(FULL)
    config = load(path)
    assert config.celery.broker_url == "amqp://rabbit:5672//"
    assert config.celery.queues == ("celery", "mail")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert len(info.value.errors) == 1
    assert "nope.yaml: cannot read" in info.value.errors[0]


@pytest.mark.parametrize("text", ["", "# nothing\n", "{}\n"])
def test_empty_config_is_all_defaults(text: str) -> None:
    config = parse(text, {})
    assert config == Config()
    assert config.rules == ()


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("storage: {path: '${P}'}", {"P": "/x.db"}, "/x.db"),
        ("storage: {path: '${P:-/d.db}'}", {}, "/d.db"),
        ("storage: {path: '${P:-/d.db}'}", {"P": ""}, "/d.db"),
        ("storage: {path: '${P:-/d.db}'}", {"P": "/set.db"}, "/set.db"),
        ("storage: {path: '${A}/${B:-b}.db'}", {"A": "/a"}, "/a/b.db"),
        ("storage: {path: '${P:-}x'}", {}, "x"),
        ("storage: {path: '$P'}", {"P": "no"}, "$P"),
    ],
)
def test_env_expansion(text: str, env: dict[str, str], expected: str) -> None:
    assert parse(text, env).storage.path == expected


# The rule's own fields merged with one override (a key given twice is an error of its own).
RULE = "rules:\n  - {%s}\n"


def rule(override: str) -> str:
    fields = {"name": "A", "kind": "queue_backlog", "threshold": "10"}
    key, _, value = override.partition(": ")
    fields[key] = value
    return RULE % ", ".join(f"{k}: {v}" for k, v in fields.items())


@pytest.mark.parametrize(
    ("text", "env", "path", "reason"),
    [
        ("celery: {bogus: 1}", {}, "celery.bogus", "unknown key"),
        ("bogus: 1", {}, "bogus", "unknown key"),
        (
            "rules:\n  - {name: A, kind: queue_backlog, tresh: 10, threshold: 1}",
            {},
            "rules[0].tresh",
            "unknown key",
        ),
        ("defaults: {labls: {}}", {}, "defaults.labls", "unknown key"),
        ("route: {chanels: [x]}", {}, "route.chanels", "unknown key"),
        (
            "channels:\n  s: {type: log, colour: red}",
            {},
            "channels.s.colour",
            "unknown key",
        ),
        ("rules:\n  - {name: A, kind: bogus}", {}, "rules[0].kind", "unknown kind 'bogus'"),
        ("rules:\n  - {name: A}", {}, "rules[0].kind", "required"),
        ("channels:\n  s: {type: telegram}", {}, "channels.s.type", "unknown type 'telegram'"),
        ("celery: {enable_events: maybe}", {}, "celery.enable_events", "valid boolean"),
        ("celery: {queues: 5}", {}, "celery.queues", "valid tuple"),
        ("celery: {broker_url: 'http://x'}", {}, "celery.broker_url", "unsupported broker"),
        (rule("threshold: 0"), {}, "rules[0].threshold", "must be > 0"),
        (rule("threshold: -5"), {}, "rules[0].threshold", "must be > 0"),
        (rule("threshold: many"), {}, "rules[0].threshold", "valid integer"),
        (rule("for: 5x"), {}, "rules[0].for", "expected a duration"),
        (rule("for: -1"), {}, "rules[0].for", "negative"),
        (rule("severity: loud"), {}, "rules[0].severity", "critical"),
        (rule("labels: {alertname: x}"), {}, "rules[0].labels", "cannot be overridden"),
        (rule("name: 'has space'"), {}, "rules[0].name", "pattern"),
        (
            "rules:\n  - {name: A, kind: failure_rate, threshold: 150%}",
            {},
            "rules[0].threshold",
            "between 0 and 1",
        ),
        (
            "rules:\n  - {name: A, kind: failure_rate, threshold: 1.5}",
            {},
            "rules[0].threshold",
            "between 0 and 1",
        ),
        (
            "rules:\n  - {name: A, kind: failure_rate, threshold: 0%}",
            {},
            "rules[0].threshold",
            "must be > 0%",
        ),
        (
            "rules:\n  - {name: A, kind: failure_rate, threshold: 5%, window: 0s}",
            {},
            "rules[0].window",
            "must be > 0",
        ),
        (
            "rules:\n  - {name: A, kind: task_latency, threshold: 0s}",
            {},
            "rules[0].threshold",
            "must be > 0",
        ),
        (
            "rules:\n  - {name: A, kind: task_latency, threshold: 1s, measure: wall}",
            {},
            "rules[0].measure",
            "queue_wait",
        ),
        (
            "rules:\n  - {name: A, kind: task_latency, threshold: 1s, percentile: 100}",
            {},
            "rules[0].percentile",
            "must be < 100",
        ),
        ("rules:\n  - {name: A, kind: queue_backlog}", {}, "rules[0].threshold", "required"),
        ("rules:\n  - {name: A, kind: idle_worker}", {}, "rules[0].idle_for", "required"),
        ("rules:\n  - {kind: no_live_workers}", {}, "rules[0].name", "required"),
        ("channels:\n  s: {type: slack, channel: x}", {}, "channels.s.token", "required"),
        (
            "channels:\n  m: {type: email, host: h, from: a@b, to: []}",
            {},
            "channels.m.to",
            "at least 1",
        ),
        (
            "rules:\n  - {name: A, kind: no_live_workers}\n  - {name: A, kind: idle_worker,"
            " idle_for: 1m}",
            {},
            "rules[1].name",
            "'A' is already used by rules[0]",
        ),
        (
            "route: {channels: [slack]}\nchannels: {log: {type: log}}",
            {},
            "route.channels[0]",
            "undefined channel 'slack'",
        ),
        (
            "route:\n  channels: [log]\n  routes:\n    - {channels: [log, pd]}\n"
            "channels: {log: {type: log}}",
            {},
            "route.routes[0].channels[1]",
            "undefined channel 'pd'",
        ),
        (
            "channels:\n  s: {type: slack, channel: x, token: '${SLACK_TOKEN}'}",
            {},
            "channels.s.token",
            "environment variable SLACK_TOKEN is not set",
        ),
        ("storage: {path: '${NOPE}'}", {}, "storage.path", "NOPE is not set"),
        (
            "server: {token: abc, token_file: /x}",
            {},
            "server.token_file",
            "either token or token_file",
        ),
        (
            "channels:\n  s: {type: slack, channel: x, token_file: /nonexistent/secret}",
            {},
            "channels.s.token_file",
            "cannot read /nonexistent/secret",
        ),
        (
            "inhibit:\n  - {source: {alertname: A}}",
            {},
            "inhibit[0]",
            "source and a target",
        ),
        (
            "inhibit:\n  - {source_re: {alertname: '('}, target: {a: b}}",
            {},
            "inhibit[0].source_re",
            "invalid regular expression",
        ),
        ("server: {listen: localhost}", {}, "server.listen", "host:port"),
        ("evaluation: {interval: 0}", {}, "evaluation.interval", "must be > 0"),
        ("limits: {max_task_names: 0}", {}, "limits.max_task_names", "must be > 0"),
        ("rules: 5", {}, "rules", "valid tuple"),
        ("- a\n- b", {}, "(top level)", "expected a mapping"),
    ],
)
def test_malformed_field_is_named_with_its_path(
    text: str, env: dict[str, str], path: str, reason: str
) -> None:
    errors = errors_of(text, env)
    assert any(e.startswith(f"{path}: ") and reason in e for e in errors), errors


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("celery:\n  queues: [a\nrules: x\n", 3),
        ("celery: {a: b}\nstorage:\n  path: x\n   bad: y\n", 4),
        ("rules:\n  - name: A\n\tkind: x\n", 3),
    ],
)
def test_yaml_syntax_error_reports_a_line(text: str, line: int) -> None:
    errors = errors_of(text)
    assert len(errors) == 1
    assert errors[0].startswith(f"line {line}, column "), errors
    assert "invalid YAML" in errors[0]


def test_several_errors_are_reported_at_once() -> None:
    text = """\
celery:
  bogus: 1
  inspect_interval: soon
rules:
  - {name: A, kind: queue_backlog, threshold: 0}
  - {name: B, kind: failure_rate, threshold: 150%, tresh: 1}
  - {name: A, kind: idle_worker, idle_for: 5x}
route: {channels: [nowhere]}
channels:
  s: {type: slack, channel: x, token: "${UNSET}"}
"""
    errors = errors_of(text)
    paths = sorted(e.partition(": ")[0] for e in errors)
    assert paths == sorted(
        [
            "celery.bogus",
            "celery.inspect_interval",
            "rules[0].threshold",
            "rules[1].threshold",
            "rules[1].tresh",
            "rules[2].idle_for",
            "rules[2].name",
            "route.channels[0]",
            "channels.s.token",
        ]
    ), errors


def test_config_built_directly_is_cross_checked() -> None:
    with pytest.raises(ValueError, match="already used by rules"):
        Config.model_validate(
            {
                "rules": [
                    {"name": "A", "kind": "no_live_workers"},
                    {"name": "A", "kind": "no_live_workers"},
                ]
            }
        )
    with pytest.raises(ValueError, match="undefined channel 'x'"):
        Config.model_validate({"route": {"channels": ["x"]}})


def test_config_is_frozen() -> None:
    config = parse("rules:\n  - {name: A, kind: no_live_workers}", {})
    with pytest.raises(ValueError):
        config.rules[0].name = "B"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        (
            "rules:\n  - {name: A, kind: no_live_workers, summary: '{{ value '}\n",
            "rules[0].summary",
        ),
        (
            "rules:\n  - {name: A, kind: no_live_workers, description: '{% if %}'}\n",
            "rules[0].description",
        ),
        (
            "channels:\n  w: {type: webhook, url: 'http://x', format: template,"
            " body: '{% for %}'}\n",
            "channels.w",
        ),
        (
            "channels:\n  s: {type: slack, token: t, channel: c, templates: {title: '{{ x'}}\n",
            "channels.s.templates",
        ),
    ],
)
def test_jinja_syntax_errors_are_config_errors(snippet: str, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(snippet, env={})
    assert any(line.startswith(path) and "invalid Jinja2" in line for line in e.value.errors), (
        e.value.errors
    )


def test_email_ssl_alone_implies_no_starttls() -> None:
    config = parse(
        "channels:\n  m: {type: email, host: h, port: 465, ssl: true, from: a@b, to: [c@d]}\n",
        env={},
    )
    assert config.channels["m"].ssl and not config.channels["m"].starttls


def test_channel_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError) as e:
        parse("channels:\n  l: {type: log, timeout: 0}\n", env={})
    assert "channels.l.timeout: must be > 0" in e.value.errors
