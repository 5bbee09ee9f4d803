"""Config fuzz: mutations of rules.example.yaml (values, keys, types, structure, and the text
itself) never make `check` raise or hang; every problem comes back as one error line naming
where it is. `make test` runs a short budget, `make fuzz` a long one (tests/conftest.py)."""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from sentinel.config import Config
from sentinel.config.check import INTERNAL_ERROR, Report, check, check_raw
from sentinel.config.loader import ConfigError, read_config
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.route import build_from

# `make fuzz` runs 20,000 examples per test: past pytest's default 300 s, so a longer budget
# there; every example is also bounded on its own (_timed).
_LONG = os.environ.get("SENTINEL_HYPOTHESIS_PROFILE") == "fuzz"
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(3600 if _LONG else 300)]

ROOT = Path(__file__).resolve().parents[3]
SEED_TEXT = (ROOT / "rules.example.yaml").read_text()
SEED = yaml.safe_load(SEED_TEXT)
ENV = {"SENTINEL_ENV": "fuzz"}
# Generous: a check takes milliseconds; these only have to tell "slow" from "hung". CPU time
# catches a runaway computation whatever the neighbours do; wall time catches a blocked read.
CPU_BOUND = 5.0
WALL_BOUND = 30.0

_SCRATCH = Path(tempfile.mkdtemp(prefix="sentinel-config-fuzz-"))
_FIFO = _SCRATCH / "fifo"
os.mkfifo(_FIFO)
_BIG = _SCRATCH / "big-secret"
_BIG.write_bytes(b"x" * (1 << 17))

KEYS = sorted(
    {
        *SEED,
        *(k for v in SEED.values() if isinstance(v, dict) for k in v),
        "for",
        "token_file",
        "routing_key_file",
        "password_file",
        "url_file",
        "<<",
        "routes",
        "match_re",
        "bogus",
        "",
    }
)

DURATIONS = st.sampled_from(
    [
        "1e15",
        "1e400",
        "9" * 401 + "s",
        "-1s",
        "0",
        "0s",
        "1h30m",
        "0.0001ms",
        "1w",
        "5x",
        "nan",
        "inf",
        "-inf",
        "30s" * 50,
        "",
        "1:30:00",
    ]
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.sampled_from([0, -1, 1, 2**63, 2**64 + 1, 10**401]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e15, 1e308, 1.7e308, -1e308, 5e-324]),
)
TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}",
            "{% for %}",
            "{{ value",
            "(" * 3000 + ")" * 3000,
            "a{99999999999}",
            "[",
            "${UNSET}",
            "${UNSET:-}",
            "${lower-case}",
            "xoxb-not-configured",
            "changeme",
            "http://x",
            "redis://localhost:1/0",
            "amqp://",
            "0.0.0.0:99999",
            "[::1]:0",
            "*",
            "5%",
            "150%",
            "-5%",
            "nan%",
            "critical",
            "template",
            "queue_backlog",
            "failure_rate",
            "slack",
            "email",
            "/dev/zero",
            "/dev/null",
            "/",
            "/nonexistent/secret",
            str(_FIFO),
            str(_BIG),
        ]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, DURATIONS, TEXTS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_paths(value, (*path, i)))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_tree(draw: st.DrawFn) -> Any:
    tree = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "add", "rename", "wrap", "nest", "graft"]))
        if not path:  # the root itself
            if op == "replace":
                tree = draw(VALUES)
            elif op == "wrap":
                tree = [tree]
            continue
        parent, last = _get(tree, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(VALUES)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(VALUES)
        elif op == "add" and isinstance(parent, list):
            parent.append(draw(VALUES))
        elif op == "rename" and isinstance(parent, dict):
            value = parent.pop(last)
            parent[draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)))] = value
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
        elif op == "nest":  # deep structure: the same value nested many levels down
            value = parent[last]
            for _ in range(draw(st.integers(10, 200))):
                value = [value] if draw(st.booleans()) else {"routes": value}
            parent[last] = value
        elif op == "graft":  # one subtree copied to another place (a route into a rule...)
            other = draw(st.sampled_from(paths))
            parent[last] = copy.deepcopy(_get(tree, other))
    return tree


def _dump(tree: Any) -> str:
    try:
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError, ValueError):
        return SEED_TEXT


BOMB = """
lol: &a [x, x, x, x, x, x, x, x, x, x]
lol2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
lol3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
lol4: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
lol5: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
lol6: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    text = _dump(draw(mutated_tree())) if draw(st.booleans()) else SEED_TEXT
    lines = text.splitlines(keepends=True) or ["\n"]
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(
            st.sampled_from(["dup", "drop", "truncate", "tab", "bomb", "anchor", "char", "indent"])
        )
        if op == "dup":  # a duplicate key, usually
            lines.insert(i, lines[i])
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "tab":
            lines[i] = "\t" + lines[i]
        elif op == "bomb":
            lines.insert(i, BOMB if draw(st.booleans()) else BOMB.replace("\n", "\n  "))
        elif op == "anchor":
            lines[i] = lines[i].replace(": ", ": &x ", 1) + "recurse: &y [*y]\n"
        elif op == "char":
            j = draw(st.integers(0, max(0, len(lines[i]) - 1)))
            lines[i] = (
                lines[i][:j]
                + draw(st.sampled_from(list("{}[]&*!|>%@`'\":-#,?")))
                + lines[i][j + 1 :]
            )
        elif op == "indent":
            lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
    return "".join(lines)


def _timed(fn: Callable[[], Report]) -> Report:
    cpu, wall = time.process_time(), time.monotonic()
    report = fn()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert cpu < CPU_BOUND and wall < WALL_BOUND, f"check took {cpu:.2f}s CPU, {wall:.2f}s"
    return report


def _assert_sound(report: Report) -> None:
    assert isinstance(report, Report)
    if report.config is None:
        event("invalid: error lines")
        assert report.errors, "no config and no error"
        for line in report.errors:
            assert "\n" not in line, line
            where, sep, reason = line.partition(": ")
            assert sep and where and reason, line
            assert INTERNAL_ERROR not in line, line
            assert len(line) < 2_000, line[:200]
    else:
        event("valid")
        assert not report.errors
        _assert_runnable(report.config)


def _assert_runnable(config: Config) -> None:
    """What `check` prints and what `run` builds first must work on any config check accepts."""
    for rule in config.rules:
        rule.describe()
        assert math.isfinite(rule.for_) and 0 <= rule.for_ <= 30 * 86400
    for channel in config.channels.values():
        channel.describe()
        channel.placeholder_secrets()
    assert 1 <= config.evaluation.interval <= 3600
    assert 0 < config.celery.inspect_timeout <= 60
    if config.route is not None:
        build_from(config)
    Inhibitor(config.inhibit)


@given(mutated_tree())
def test_check_of_a_mutated_tree_returns_errors_never_raises(tree: Any) -> None:
    if isinstance(tree, dict):
        _assert_sound(_timed(lambda: check_raw(copy.deepcopy(tree), ENV)))
    else:
        text = _dump(tree)
        _assert_sound(_timed(lambda: check(text, ENV)))


@given(mutated_text())
def test_check_of_a_mutated_text_returns_errors_never_raises(text: str) -> None:
    _assert_sound(_timed(lambda: check(text, ENV)))


@given(mutated_text())
def test_reading_a_mutated_file_returns_errors_never_raises(text: str) -> None:
    """The same through the file: read_config (size cap, decoding) then check_raw."""
    path = _SCRATCH / "rules.yaml"
    path.write_text(text)

    def read_and_check() -> Report:
        try:
            return check_raw(read_config(path), ENV)
        except ConfigError as e:
            return Report(None, tuple(e.errors))

    _assert_sound(_timed(read_and_check))


def test_a_secret_file_path_with_a_line_break_stays_one_error_line() -> None:
    """Found by the mutated-tree fuzz: `token_file: "\\n"` split its error in two."""
    report = check_raw({"server": {"token_file": "\n"}}, ENV)
    assert report.errors and all("\n" not in line for line in report.errors)
