"""Matchers parse as Alertmanager's classic parser does and match as Alertmanager matches."""

from __future__ import annotations

import pytest

from sentinel.notify.matchers import (
    Matcher,
    MatcherError,
    format_matchers,
    matches_all,
    parse_config_matchers,
    parse_matcher,
    parse_matchers,
)

# (input, expected [(name, op, value), ...]); the behaviour follows pkg/labels/parse_test.go.
VALID: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("", []),
    ("{}", []),
    ('severity="critical"', [("severity", "=", "critical")]),
    ('queue=~"billing.*"', [("queue", "=~", "billing.*")]),
    ('env!="dev"', [("env", "!=", "dev")]),
    ('task!~"tmp.*"', [("task", "!~", "tmp.*")]),
    ("foo=bar", [("foo", "=", "bar")]),
    ("{foo=bar}", [("foo", "=", "bar")]),
    ("{foo!~bar.*}", [("foo", "!~", "bar.*")]),
    ('{a="1", b=~"x.*"}', [("a", "=", "1"), ("b", "=~", "x.*")]),
    ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("  \tfoo  =~  bar  ", [("foo", "=~", "bar")]),
    ("foo=", [("foo", "=", "")]),
    ("{foo=", [("foo", "=", "")]),
    ('{foo=""}', [("foo", "=", "")]),
    ("foo=~", [("foo", "=~", "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", "=", "bar,quux"), ("job", "=", "job1")]),
    ('{foo="bar}"}', [("foo", "=", "bar}")]),
    ("{foo=bar}}", [("foo", "=", "bar}")]),
    ("{foo=bar}},}", [("foo", "=", "bar}}")]),
    ("{foo=,bar=}}", [("foo", "=", ""), ("bar", "=", "}")]),
    ("{foo=}b", [("foo", "=", "}b")]),
    ("{foo='}", [("foo", "=", "'")]),
    ("{foo=`}", [("foo", "=", "`")]),
    ('{foo=\\"}', [("foo", "=", '"')]),
    ("tricky=~~~", [("tricky", "=~", "~~")]),
    ('trickier==\\\\=\\=\\"', [("trickier", "=", '=\\=\\="')]),
    (
        'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
        [("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")],
    ),
    (
        '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
        [("quote", "=", 'She said: "Hi, ladies! That\'s gender-neutral…"')],
    ),
    # OpenMetrics escapes; any other backslash, and a trailing one, stays literal.
    ('a="x\\ny"', [("a", "=", "x\ny")]),
    ('a="back\\\\slash"', [("a", "=", "back\\slash")]),
    ("{foo=bar\\t}", [("foo", "=", "bar\\t")]),
    ("{foo=bar\\n}", [("foo", "=", "bar\n")]),
    ("{foo=bar\\}", [("foo", "=", "bar\\")]),
    ("{foo=bar\\\\}", [("foo", "=", "bar\\")]),
    ('{foo=bar\\"}', [("foo", "=", 'bar"')]),
    ('foo="bär ✓ 日本"', [("foo", "=", "bär ✓ 日本")]),
    ("__name__:x=1", [("__name__:x", "=", "1")]),
    ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
    ('a="multi\nline"', [("a", "=", "multi\nline")]),  # a literal line feed is tolerated
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[repr(v[0]) for v in VALID])
def test_parse_valid(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


# (input, a fragment the error must contain)
INVALID = [
    (",", "bad matcher format: ''"),
    ("{,}", "bad matcher format: ''"),
    ("a=1,,b=2", "bad matcher format: ''"),
    ('{invalid-name = "valid label"}', "bad matcher format: 'invalid-name"),
    ('1abc="x"', "bad matcher format: '1abc"),
    ('ünïcode="x"', "bad matcher format: 'ünïcode"),  # classic names are ASCII only
    ("severity", "bad matcher format: 'severity'"),
    ('severity=="x"', 'unescaped double quote: ="x"'),
    ('severity=>"x"', "unescaped double quote"),
    ("foo<bar", "bad matcher format"),
    ('job="value', 'unescaped double quote: "value'),
    ('job=value"', 'unescaped double quote: value"'),
    ('trickier==\\\\=\\=\\""', "unescaped double quote"),
    ('contains_unescaped_quote = foo"bar', 'unescaped double quote: foo"bar'),
    ('{foo="bar"baz"}', "unescaped double quote"),
    ('foo=~"invalid[regexp"', 'invalid regular expression in matcher foo=~"invalid[regexp"'),
    ('"{foo=\\"bar"}', "bad matcher format"),
    ('"foo=\\"bar\\""', "bad matcher format"),
    ('"foo="bar""', "bad matcher format"),
    ("{{foo=", "bad matcher format: '{foo='"),
]


@pytest.mark.parametrize(("text", "error"), INVALID, ids=[repr(v[0]) for v in INVALID])
def test_parse_invalid(text: str, error: str) -> None:
    with pytest.raises(MatcherError) as exc:
        parse_matchers(text)
    assert error in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_error_names_the_offending_matcher_not_the_whole_list() -> None:
    with pytest.raises(MatcherError, match="bad matcher format: 'bad-name=x'"):
        parse_matchers('a="1", bad-name=x')


def test_parse_matcher_takes_exactly_one() -> None:
    assert parse_matcher(' env != "dev" ') == Matcher("env", "!=", "dev")
    with pytest.raises(MatcherError):
        parse_matcher("")


# --- matching -------------------------------------------------------------------------------

MATCHING = [
    ('severity="critical"', {"severity": "critical"}, True),
    ('severity="critical"', {"severity": "critical2"}, False),
    ('severity="critical"', {}, False),
    ('severity!="critical"', {}, True),  # missing = empty string
    ('severity=""', {}, True),
    ('severity=""', {"severity": "x"}, False),
    ('severity!=""', {"severity": "x"}, True),
    ('queue=~"billing.*"', {"queue": "billing"}, True),
    ('owner=~"^(?:team-(B|C))$"', {"owner": "team-C"}, True),  # match_re's anchored form
    ('owner=~"^(?:team-(B|C))$"', {"owner": "team-CC"}, False),
    ('queue=~"billing.*"', {"queue": "billing-eu"}, True),
    ('queue=~"billing.*"', {"queue": "old-billing"}, False),  # anchored at the start
    ('queue=~"bill"', {"queue": "billing"}, False),  # ... and at the end
    ('queue=~"a|b"', {"queue": "a"}, True),
    ('queue=~"a|b"', {"queue": "ab"}, False),  # the anchor wraps the whole alternation
    ('queue=~"a|b"', {"queue": "xb"}, False),
    ('queue=~""', {}, True),
    ('queue=~".+"', {}, False),
    ('queue=~".*"', {}, True),
    ('task!~"tmp.*"', {"task": "tmp.cleanup"}, False),
    ('task!~"tmp.*"', {"task": "billing.tmp"}, True),
    ('task!~"tmp.*"', {}, True),
    ('task=~"(?i)BILLING\\\\..*"', {"task": "billing.charge"}, True),
    ('a=~"x.y"', {"a": "x\ny"}, False),  # `.` does not match a line feed in RE2 either
    ('a=~"\\\\d+"', {"a": "123"}, True),
    ('a=~"\\\\d+"', {"a": "١٢٣"}, False),  # RE2's \d is ASCII only
    ('a=~"[[:upper:]]+"', {"a": "ABC"}, True),
    ('a=~"[[:upper:]]+"', {"a": "AbC"}, False),
    ('a=~"a(?i)b|c"', {"a": "aB"}, True),
    ('a=~"a(?i)b|c"', {"a": "C"}, True),
    ('a=~"a(?i)b|c"', {"a": "Ab"}, False),
    ('a=~"\\\\Qa.b\\\\E"', {"a": "a.b"}, True),
    ('a=~"\\\\Qa.b\\\\E"', {"a": "axb"}, False),
    ('a=~"x{,2}"', {"a": "x{,2}"}, True),  # RE2 reads {,2} literally
    ('a=~"ünï.*"', {"a": "ünïcode"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHING)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_matches_all() -> None:
    ms = parse_matchers('{alertname="QueueBacklog", queue=~"billing.*", env!="dev"}')
    assert matches_all(ms, {"alertname": "QueueBacklog", "queue": "billing", "env": "prod"})
    assert not matches_all(ms, {"alertname": "QueueBacklog", "queue": "billing", "env": "dev"})
    assert matches_all([], {"anything": "at all"})


# Regexes RE2 refuses but Python's re would accept (with another meaning): refused here too.
RE2_REFUSES = ["(?=a)a", "(?!a)b", "(?<=a)b", "(?<!a)b", "(a)\\1", "a++", "a*+", "a{2}+", "(?x)a"]
RE2_REFUSES += ["a\\Z", "(?#comment)a", "a{1001}", "(?P=x)", "(a", "a)", "[a"]


@pytest.mark.parametrize("pattern", RE2_REFUSES)
def test_regexes_re2_refuses_are_refused(pattern: str) -> None:
    with pytest.raises(MatcherError, match="invalid regular expression in matcher a=~"):
        Matcher("a", "=~", pattern)


@pytest.mark.parametrize(
    "pattern", ["(?i)x", "(?is)x", "(?i:x)", "(?-s:x)", "(?P<n>x)", "x{2,}", "^(?:a|b)$", "(?:)"]
)
def test_regexes_re2_accepts_are_accepted(pattern: str) -> None:
    Matcher("a", "=~", pattern)


def test_unknown_operator() -> None:
    with pytest.raises(MatcherError, match="unknown match operator"):
        Matcher("a", "==", "b")  # type: ignore[arg-type]


# --- canonical form and the API body --------------------------------------------------------

CANONICAL = [
    (Matcher("severity", "=", "critical"), 'severity="critical"'),
    (Matcher("queue", "=~", "billing.*"), 'queue=~"billing.*"'),
    (Matcher("env", "!=", "dev"), 'env!="dev"'),
    (Matcher("task", "!~", "tmp.*"), 'task!~"tmp.*"'),
    (Matcher("a", "=", 'say "hi"\nback\\slash'), 'a="say \\"hi\\"\\nback\\\\slash"'),
    (Matcher("a", "=", ""), 'a=""'),
    (Matcher("with space", "=", "x\ty"), '"with space"="x\\ty"'),  # UTF-8 names get quoted
]


@pytest.mark.parametrize(("matcher", "text"), CANONICAL)
def test_str_is_alertmanagers_canonical_form(matcher: Matcher, text: str) -> None:
    assert str(matcher) == text


@pytest.mark.parametrize("text", [v[0] for v in VALID])
def test_str_round_trips_through_the_parser(text: str) -> None:
    for m in parse_matchers(text):
        assert parse_matcher(str(m)) == m


API = [
    (Matcher("a", "=", "x"), {"name": "a", "value": "x", "isRegex": False, "isEqual": True}),
    (Matcher("a", "!=", "x"), {"name": "a", "value": "x", "isRegex": False, "isEqual": False}),
    (Matcher("a", "=~", "x.*"), {"name": "a", "value": "x.*", "isRegex": True, "isEqual": True}),
    (Matcher("a", "!~", "x.*"), {"name": "a", "value": "x.*", "isRegex": True, "isEqual": False}),
]


@pytest.mark.parametrize(("matcher", "body"), API)
def test_api_body_both_ways(matcher: Matcher, body: dict[str, object]) -> None:
    assert matcher.to_api() == body
    assert Matcher.from_api(body) == matcher


def test_api_body_defaults() -> None:
    # amtool always sends isEqual; older clients omit it and mean "equal", as Alertmanager reads.
    assert Matcher.from_api({"name": "a", "value": "x"}) == Matcher("a", "=", "x")
    assert Matcher.from_api({"name": "a", "value": ".*", "isRegex": True}).op == "=~"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"value": "x"}, "name must be a non-empty string"),
        ({"name": "", "value": "x"}, "name must be a non-empty string"),
        ({"name": "a"}, "value must be a string"),
        ({"name": "a", "value": 1}, "value must be a string"),
        ({"name": "a", "value": "x", "isRegex": "yes"}, "must be booleans"),
        ({"name": "a", "value": "[", "isRegex": True}, "invalid regular expression"),
        ("a=b", "must be an object"),
    ],
)
def test_api_body_errors(body: object, error: str) -> None:
    with pytest.raises(MatcherError, match=error):
        Matcher.from_api(body)  # type: ignore[arg-type]


def test_matcher_is_frozen_and_hashable() -> None:
    m = Matcher("a", "=~", "x")
    assert {m, Matcher("a", "=~", "x")} == {m}
    with pytest.raises(AttributeError):
        m.value = "y"  # type: ignore[misc]


def test_config_matchers_are_sorted_as_alertmanager_sorts_them() -> None:
    ms = parse_config_matchers(['severity="critical"', 'a=~"x", a="x"', "a!=x", "a=y, a!~x"])
    assert format_matchers(ms) == '{a="x",a!="x",a=~"x",a!~"x",a="y",severity="critical"}'
    assert parse_config_matchers([]) == []
    assert parse_config_matchers([""]) == []


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ('severity="critical"', "must be a list of strings"),
        ([1], r"matchers\[0\]: must be a string"),
        (['a="1"', "bad-name=2"], "bad matcher format: 'bad-name=2'"),
    ],
)
def test_config_matchers_errors(lines: object, error: str) -> None:
    with pytest.raises(MatcherError, match=error):
        parse_config_matchers(lines)  # type: ignore[arg-type]


def test_format_matchers() -> None:
    assert format_matchers([]) == "{}"
    assert parse_matchers(format_matchers(parse_matchers('{b=~"x,y", a="q\\"uote"}'))) == [
        Matcher("b", "=~", "x,y"),
        Matcher("a", "=", 'q"uote'),
    ]
