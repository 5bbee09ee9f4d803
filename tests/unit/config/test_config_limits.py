"""Config that can't hurt: bounds on every duration and count, YAML limits, duplicate keys,
`_file` secrets read with a cap and only from regular files, and the warnings of `check`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sentinel.config import loader, parse
from sentinel.config.check import Report, check, lint, secret_problems
from sentinel.config.loader import ConfigError, load_yaml, read_config

BILLION_LAUGHS = """\
bogus:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    report = check(text, env or {})
    assert report.config is None, "expected errors"
    return list(report.errors)


def one_error(text: str, path: str, reason: str) -> None:
    found = errors(text)
    assert any(e.startswith(f"{path}: ") and reason in e for e in found), found


# --- bounds ------------------------------------------------------------------------------

RULES = {
    "backlog": {"kind": "queue_backlog", "threshold": "10"},
    "failure": {"kind": "failure_rate", "threshold": "5%"},
    "latency": {"kind": "task_latency", "threshold": "1s"},
    "idle": {"kind": "idle_worker", "idle_for": "1m"},
    "workers": {"kind": "no_live_workers"},
}


def rule(kind: str, fields: str) -> str:
    """One rule of `kind` with its required fields, `fields` ("a: 1, b: 2") overriding them."""
    merged = {"name": "A", **RULES[kind]}
    for item in fields.split(", "):
        key, _, value = item.partition(": ")
        merged[key] = value
    return "rules:\n  - {" + ", ".join(f"{k}: {v}" for k, v in merged.items()) + "}\n"


# (config, path, what the error says): one row per bounded field, past its upper bound
# and, where there is one above zero, below its lower bound.
OUT_OF_RANGE = [
    ("evaluation: {interval: 1e15}", "evaluation.interval", "between 1s and 1h"),
    ("evaluation: {interval: 2h}", "evaluation.interval", "between 1s and 1h"),
    ("evaluation: {interval: 500ms}", "evaluation.interval", "got 500ms"),
    ("celery: {inspect_interval: 1e15}", "celery.inspect_interval", "between 1s and 1h"),
    ("celery: {inspect_timeout: 1e15}", "celery.inspect_timeout", "> 0 and at most 1m"),
    ("celery: {inspect_timeout: 0}", "celery.inspect_timeout", "must be > 0"),
    ("limits: {bucket: 500ms}", "limits.bucket", "between 1s and 1h"),
    ("limits: {bucket: 2d}", "limits.bucket", "between 1s and 1h"),
    ("limits: {worker_retention: 31d}", "limits.worker_retention", "at most 30d"),
    ("limits: {max_task_names: 1e7}", "limits.max_task_names", "valid integer"),
    ("limits: {max_task_names: 10000000}", "limits.max_task_names", "at most 1000000"),
    ("limits: {max_workers: 10000000}", "limits.max_workers", "at most 1000000"),
    ("limits: {max_queues: 10000000}", "limits.max_queues", "at most 1000000"),
    ("limits: {max_inflight_tasks: 100000000}", "limits.max_inflight_tasks", "at most"),
    ("limits: {max_window_mib: 1000000}", "limits.max_window_mib", "at most 16384"),
    ("defaults: {for: 1e15}", "defaults.for", "at most 30d"),
    (rule("backlog", "for: 31d"), "rules[0].for", "at most 30d"),
    (rule("backlog", "threshold: 10000000000"), "rules[0].threshold", "at most 1000000000"),
    (rule("workers", "min_workers: 10000000"), "rules[0].min_workers", "at most 1000000"),
    (rule("workers", "min_workers: 0"), "rules[0].min_workers", "must be > 0"),
    (rule("failure", "window: 8d"), "rules[0].window", "at most 7d"),
    (rule("failure", "min_count: 10000000000"), "rules[0].min_count", "at most"),
    (rule("failure", "min_count: 0"), "rules[0].min_count", "must be > 0"),
    (rule("latency", "window: 1e15"), "rules[0].window", "at most 7d"),
    (rule("latency", "threshold: 1e15"), "rules[0].threshold", "at most 30d"),
    (rule("latency", "min_count: 10000000000"), "rules[0].min_count", "at most"),
    (rule("idle", "idle_for: 1e15"), "rules[0].idle_for", "at most 30d"),
    ("route: {group_wait: 1e15}", "route.group_wait", "at most 30d"),
    ("route: {group_interval: 1e15}", "route.group_interval", "at most 30d"),
    ("route: {group_interval: 0s}", "route.group_interval", "must be > 0"),
    ("route: {repeat_interval: 1e15}", "route.repeat_interval", "at most 30d"),
    ("route: {routes: [{repeat_interval: 0}]}", "route.routes[0].repeat_interval", "> 0"),
    ("channels: {l: {type: log, timeout: 1h}}", "channels.l.timeout", "at most 1m"),
    (
        "channels: {m: {type: email, host: h, from: a@b, to: [c@d], port: 70000}}",
        "channels.m.port",
        "at most 65535",
    ),
    (
        "channels: {w: {type: webhook, url: 'http://x', max_alerts: 1000000}}",
        "channels.w.max_alerts",
        "at most 100000",
    ),
    (
        "celery: {broker_transport_options: {polling_interval: 1.0e+15}}",
        "celery.broker_transport_options",
        "polling_interval: must be between 0 and 3600",
    ),
    (
        # YAML 1.1 reads 1e15 (no dot) as a string: kombu would sleep("1e15")
        "celery: {broker_transport_options: {socket_timeout: 1e15}}",
        "celery.broker_transport_options",
        "socket_timeout: must be a number of seconds",
    ),
    (
        "celery: {broker_transport_options: {visibility_timeout: .inf}}",
        "celery.broker_transport_options",
        "finite",
    ),
]


@pytest.mark.parametrize(("text", "path", "reason"), OUT_OF_RANGE)
def test_every_duration_and_count_is_bounded(text: str, path: str, reason: str) -> None:
    one_error(text, path, reason)


@pytest.mark.parametrize(
    "text",
    [
        "evaluation: {interval: 1s}",
        "evaluation: {interval: 1h}",
        "celery: {inspect_timeout: 1m, inspect_interval: 1s}",
        "limits: {bucket: 1s, worker_retention: 0s, max_window_mib: 16384}",
        "route: {group_wait: 0s, group_interval: 30d, repeat_interval: 30d}",
        rule("failure", "window: 7d, min_count: 1000000000, for: 30d"),
        rule("backlog", "threshold: 1000000000"),
        "celery: {broker_transport_options: {polling_interval: 0.1, visibility_timeout: 43200}}",
    ],
)
def test_the_bounds_themselves_are_accepted(text: str) -> None:
    assert check(text, {}).config is not None, check(text, {}).errors


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (rule("backlog", "threshold: true"), "rules[0].threshold"),
        (rule("backlog", "threshold: yes"), "rules[0].threshold"),
        (rule("failure", "min_count: true"), "rules[0].min_count"),
        (rule("latency", "percentile: true"), "rules[0].percentile"),
        (rule("workers", "min_workers: on"), "rules[0].min_workers"),
        ("limits: {max_workers: false}", "limits.max_workers"),
        (
            "channels: {m: {type: email, host: h, from: a@b, to: [c@d], port: true}}",
            "channels.m.port",
        ),
    ],
)
def test_a_yaml_boolean_is_not_a_number(text: str, path: str) -> None:
    one_error(text, path, "expected a number, got")


def test_a_401_digit_duration_is_an_error_line() -> None:
    digits = "1" * 401
    one_error(f"evaluation:\n  interval: {digits}\n", "evaluation.interval", "number too long")
    # Quoted it reaches the duration parser: still one line, and not 401 digits of it.
    found = errors(f"evaluation:\n  interval: '{digits}'\n")
    assert len(found) == 1 and found[0].startswith("evaluation.interval: "), found
    assert len(found[0]) < 200
    found = errors(f"rules:\n  - {{name: A, kind: queue_backlog, threshold: '{digits}'}}\n")
    assert found == [
        "rules[0].threshold: must be > 0 and at most 1000000000, got a number of 401 digits"
    ], found


def test_a_huge_int_given_directly_is_a_validation_error_not_an_overflow() -> None:
    from pydantic import ValidationError

    from sentinel.config.schema import EvaluationConfig

    with pytest.raises(ValidationError, match="out of range"):
        EvaluationConfig.model_validate({"interval": 10**400})


# --- YAML limits -------------------------------------------------------------------------


def test_billion_laughs_is_refused_under_an_unknown_key() -> None:
    found = errors(BILLION_LAUGHS)
    assert len(found) == 1
    assert found[0].startswith("bogus.") and "expands to more than" in found[0], found


def test_a_recursive_alias_is_refused() -> None:
    found = errors("a: &x [1, *x]\n")
    assert any("refers to itself" in e or "invalid YAML" in e for e in found), found


def test_too_many_aliases_are_refused() -> None:
    text = "a: &x 1\nb: [" + ", ".join(["*x"] * (loader.MAX_ALIASES + 1)) + "]\n"
    one_error(text, "b[1000]", "more than 1000 YAML aliases")


def test_anchors_and_merge_keys_still_work() -> None:
    text = """\
rules:
  - &backlog {name: A, kind: queue_backlog, threshold: 10, for: 1m}
  - {<<: *backlog, name: B, threshold: 20}
"""
    # The merge key is no duplicate, and B's own keys override the merged ones.
    config = parse(text, {})
    assert [(r.name, r.threshold, r.for_) for r in config.rules] == [  # type: ignore[union-attr]
        ("A", 10, 60.0),
        ("B", 20, 60.0),
    ]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("x: " + "[" * 100 + "]" * 100, "x[0]"),
        ("x: " + "{a: " * 100 + "1" + "}" * 100, "x.a.a"),
        (
            "route:\n" + "".join("  " * i + "  routes:\n" + "  " * i + "  - \n" for i in range(40)),
            "route",
        ),
    ],
)
def test_deep_nesting_is_refused_without_recursion_error(text: str, path: str) -> None:
    found = errors(text)
    assert len(found) == 1 and found[0].startswith(path) and "nested deeper" in found[0], found


def test_a_file_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "rules.yaml"
    big.write_text("# " + "x" * loader.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        read_config(big)


def test_dev_zero_as_the_config_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config("/dev/zero")


@pytest.mark.parametrize(
    ("text", "path", "lines"),
    [
        ("a: 1\na: 2\n", "a", "line 2; first at line 1"),
        (
            "channels:\n  s:\n    type: slack\n    token: a\n    channel: c\n    token: b\n",
            "channels.s.token",
            "line 6; first at line 4",
        ),
        (
            "rules:\n  - {name: A, kind: no_live_workers, for: 1m, for: 2m}\n",
            "rules[0].for",
            "line 2",
        ),
        ("channels:\n  s: {type: log}\n  s: {type: log}\n", "channels.s", "line 3"),
    ],
)
def test_duplicate_keys_are_errors_with_their_path(text: str, path: str, lines: str) -> None:
    found = errors(text)
    assert any(e.startswith(f"{path}: duplicate key") and lines in e for e in found), found


def test_every_duplicate_is_reported() -> None:
    found = errors("a: 1\na: 2\nb: {c: 1, c: 2}\n")
    assert [e.partition(":")[0] for e in found] == ["a", "b.c"], found


def test_a_number_too_long_for_python_is_an_error_line() -> None:
    # int() refuses more than 4,300 digits with a ValueError: it once escaped as a traceback.
    one_error("evaluation: {interval: " + "9" * 5000 + "}\n", "evaluation.interval", "too long")
    one_error("evaluation: {interval: " + "1:" * 3000 + "1}\n", "evaluation.interval", "too long")


@pytest.mark.parametrize(
    "text",
    [
        "rules:\n  - {name: A, kind: no_live_workers, summary: '{{ "
        + "(" * 3000
        + "1"
        + ")" * 3000
        + " }}'}\n",
        "inhibit:\n  - {source: {a: b}, target_re: {a: '" + "(" * 3000 + ")" * 3000 + "'}}\n",
        "inhibit:\n  - {source: {a: b}, target_re: {a: 'a{99999999999}'}}\n",
    ],
)
def test_templates_and_regexes_that_overflow_python_are_error_lines(text: str) -> None:
    found = errors(text)
    assert len(found) == 1 and "internal error" not in found[0], found


def test_yaml_tags_that_build_objects_are_refused() -> None:
    found = errors("celery: !!python/object/apply:os.system ['true']\n")
    assert found and "invalid YAML" in found[0], found


# --- _file secrets -----------------------------------------------------------------------

SLACK_FILE = "channels:\n  s: {type: slack, channel: c, token_file: '%s'}\n"


def secret_error(path: str) -> str:
    found = errors(SLACK_FILE % path)
    assert len(found) == 1 and found[0].startswith("channels.s.token_file: "), found
    return found[0]


def test_a_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "slack"
    secret.write_text("xoxb-real-secret\n")
    config = parse(SLACK_FILE % secret, {})
    assert config.channels["s"].token.get_secret_value() == "xoxb-real-secret"  # type: ignore[union-attr]


def test_a_secret_through_a_symlink_is_read(tmp_path: Path) -> None:
    # Kubernetes mounts secrets as symlinks (..data/key): those are regular files too.
    (tmp_path / "real").write_text("xoxb-linked")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert parse(SLACK_FILE % (tmp_path / "link"), {}).channels["s"].token.get_secret_value() == (  # type: ignore[union-attr]
        "xoxb-linked"
    )


def test_dev_zero_as_a_secret_is_refused_at_once() -> None:
    assert "not a regular file (a character device)" in secret_error("/dev/zero")


def test_a_directory_as_a_secret_is_refused(tmp_path: Path) -> None:
    assert "is a directory" in secret_error(str(tmp_path))


def test_a_fifo_as_a_secret_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list[str] = []
    # No writer ever opens it: a plain open() would wait forever; run it aside to prove not.
    worker = threading.Thread(target=lambda: result.append(secret_error(str(fifo))), daemon=True)
    worker.start()
    worker.join(30)
    assert result and "not a regular file (a FIFO)" in result[0], result


def test_a_secret_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (loader.MAX_SECRET_BYTES + 1))
    assert "larger than 64 KiB" in secret_error(str(big))
    big.write_bytes(b"x" * loader.MAX_SECRET_BYTES)
    assert parse(SLACK_FILE % big, {}).channels["s"].token.get_secret_value() == "x" * (  # type: ignore[union-attr]
        loader.MAX_SECRET_BYTES
    )


def test_a_secret_that_is_not_text_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00secret")
    assert "not UTF-8" in secret_error(str(binary))


def test_a_secret_file_key_that_is_not_a_path_is_an_error() -> None:
    one_error(
        "channels:\n  s: {type: slack, channel: c, token_file: [a]}\n",
        "channels.s.token_file",
        "file path",
    )


# --- warnings ----------------------------------------------------------------------------

ROUTED = """\
rules:
  - {name: A, kind: no_live_workers}
route: {channels: [%s]}
channels:
  slack: {type: slack, channel: c, token: '%s'}
  pd: {type: pagerduty, routing_key: '%s'}
  mail: {type: email, host: h, from: a@b, to: [c@d], username: u, password: '%s'}
  log: {type: log}
"""


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "xoxb-not-configured",
        "not-configured",
        "NOT_CONFIGURED",
        "changeme",
        "change-me",
        "CHANGE_ME",
        "replace-me",
        "${slack-token}",
        "prefix-${X:?unset}",
        "<your slack token>",
        "your-token-here",
        "xxxx",
        "xoxb-",
        "placeholder",
        "TODO",
    ],
)
def test_placeholder_secrets_are_warned_about(value: str) -> None:
    report = check(ROUTED % ("log", value, value, value), {})
    assert report.config is not None, report.errors
    for where in ("channels.slack.token", "channels.pd.routing_key", "channels.mail.password"):
        assert any(w.startswith(f"{where}: ") and "not routed" in w for w in report.warnings), (
            report.warnings
        )
    # The secret itself is never printed beyond the placeholder pattern it matched.
    assert secret_problems(report.config, routed_only=True) == []


@pytest.mark.parametrize(
    "value", ["xoxb-1234-5678-AbCdEf", "R0UT1NGKEY", "hunter2", "s3cret", "xoxb-test"]
)
def test_real_looking_secrets_are_not_warned_about(value: str) -> None:
    report = check(ROUTED % ("slack, pd, mail", value, value, value), {})
    assert report.config is not None and report.warnings == (), report.warnings


def test_a_routed_placeholder_is_what_run_refuses() -> None:
    report = check(ROUTED % ("slack, log", "xoxb-not-configured", "real", "real"), {})
    assert report.config is not None
    refused = secret_problems(report.config, routed_only=True)
    assert len(refused) == 1 and refused[0].startswith("channels.slack.token: "), refused
    assert "the route sends to 'slack'" in refused[0]
    assert "xoxb-not-configured" not in refused[0].replace("'not-configured'", "")


def test_email_without_auth_is_not_a_placeholder() -> None:
    text = "channels:\n  m: {type: email, host: h, from: a@b, to: [c@d]}\n"
    assert check(text, {}).warnings == ()


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "{}\n", "---\n"])
def test_an_empty_file_is_warned_about(text: str) -> None:
    report = check(text, {})
    assert report.config is not None
    assert any(w.startswith("(top level): the configuration is empty") for w in report.warnings)


def test_a_file_with_settings_but_no_rules_is_not_called_empty() -> None:
    assert check("evaluation: {interval: 30s}\n", {}).warnings == ()


@pytest.mark.parametrize(
    "route",
    ["", "route: {group_wait: 1s}\n", "route: {channels: []}\n"],
)
def test_rules_with_no_route_that_sends_are_warned_about(route: str) -> None:
    text = "rules:\n  - {name: A, kind: no_live_workers}\nchannels: {log: {type: log}}\n" + route
    report = check(text, {})
    assert report.config is not None, report.errors
    assert any(
        w.startswith("route: 1 rule(s) but no route sends anywhere") for w in report.warnings
    )


def test_a_route_in_a_child_counts_as_sending() -> None:
    text = (
        "rules:\n  - {name: A, kind: no_live_workers}\nchannels: {log: {type: log}}\n"
        "route: {routes: [{match: {severity: critical}, channels: [log]}]}\n"
    )
    report = check(text, {})
    assert report.config is not None and report.warnings == ()


def test_the_example_config_warns_only_about_its_unrouted_placeholders() -> None:
    text = Path(__file__).resolve().parents[3].joinpath("rules.example.yaml").read_text()
    report = check(text, {})
    assert report.config is not None, report.errors
    assert sorted(w.partition(":")[0] for w in report.warnings) == [
        "channels.oncall-mail.password",
        "channels.pagerduty.routing_key",
        "channels.slack.token",
    ]
    assert all("not routed" in w for w in report.warnings)
    assert lint(report.config, unrouted=False) == []


def test_check_never_raises_and_returns_a_report() -> None:
    assert isinstance(check("\x00\x01", {}), Report)
    assert isinstance(check("[", {}), Report)
    assert isinstance(check(BILLION_LAUGHS, {}), Report)


def test_load_yaml_of_a_scalar_document() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml("just a string\n")
