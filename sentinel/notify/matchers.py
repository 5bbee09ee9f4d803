"""Alertmanager label matchers: `severity="critical"`, `queue=~"billing.*"`, `env!=dev`, ...

The grammar is Alertmanager's classic parser (`pkg/labels/parse.go`), the one `matchers:` in
route and inhibit config and amtool 0.25 use: tolerant where it is tolerant (unquoted values,
optional braces, a trailing comma, a lone backslash kept literally) and strict where it is
strict (an unescaped `"` inside a value, a label name that is not `[a-zA-Z_:][a-zA-Z0-9_:]*`).

Regexes are RE2 in Alertmanager and `re` here. `_Re2Translator` turns the RE2 spellings that
`re` reads differently (`\\z`, `\\Q...\\E`, `[[:alpha:]]`, ASCII-only `\\d \\s \\w`) into `re`
spellings, and refuses the `re`-only constructs RE2 refuses (lookaround, backreferences,
possessive quantifiers), so a pattern means the same thing in both or is rejected here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

__all__ = [
    "OPS",
    "Matcher",
    "MatcherError",
    "Op",
    "format_matchers",
    "matches_all",
    "parse_config_matchers",
    "parse_matcher",
    "parse_matchers",
    "sort_key",
]

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=", "!=", "=~", "!~")


class MatcherError(ValueError):
    """A matcher string or API body that Alertmanager would refuse."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. A missing label matches as the empty string, as in Alertmanager."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise MatcherError(f"unknown match operator {self.op!r} (want one of = != =~ !~)")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", _compile(self.name, self.op, self.value))

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    def matches_value(self, value: str) -> bool:
        if self._regex is None:
            return (value == self.value) is self.is_equal
        # fullmatch is the anchoring Alertmanager gets from compiling "^(?:" + value + ")$".
        return (self._regex.fullmatch(value) is not None) is self.is_equal

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        # Alertmanager's Matcher.String(): names the classic parser could not read are quoted.
        if any(_is_reserved(ch) for ch in self.name):
            return f"{_go_quote(self.name)}{self.op}{_go_quote(self.value)}"
        return f'{self.name}{self.op}"{_openmetrics_escape(self.value)}"'

    def to_api(self) -> dict[str, Any]:
        """The API v2 silence matcher body."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Matcher:
        """Read an API v2 silence matcher; `isEqual` defaults to true, `isRegex` to false."""
        if not isinstance(body, Mapping):
            raise MatcherError(f"matcher must be an object, got {type(body).__name__}")
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not name:
            raise MatcherError(f"matcher name must be a non-empty string, got {name!r}")
        if not isinstance(value, str):
            raise MatcherError(f"matcher {name!r}: value must be a string, got {value!r}")
        is_regex, is_equal = body.get("isRegex", False), body.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise MatcherError(f"matcher {name!r}: isRegex and isEqual must be booleans")
        op: Op = ("=~" if is_equal else "!~") if is_regex else ("=" if is_equal else "!=")
        return cls(name, op, value)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


def sort_key(m: Matcher) -> tuple[str, str, int]:
    """Alertmanager's matcher order (`labels.Matchers.Less`): name, value, then = != =~ !~."""
    return (m.name, m.value, OPS.index(m.op))


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """`{a="1",b=~"x.*"}`, as `labels.Matchers.String()` prints a list (in the given order)."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def parse_config_matchers(lines: Iterable[str]) -> list[Matcher]:
    """A `matchers:` list from route or inhibit config: each line may hold several matchers;
    the result is sorted as Alertmanager's `config.Matchers` sorts it (route keys print it)."""
    if isinstance(lines, str):
        raise MatcherError("matchers must be a list of strings, e.g. ['severity=\"critical\"']")
    out: list[Matcher] = []
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise MatcherError(f"matchers[{i}]: must be a string, got {type(line).__name__}")
        out.extend(parse_matchers(line))
    return sorted(out, key=sort_key)


# --- parsing (pkg/labels/parse.go) --------------------------------------------------------

# Go's \s is ASCII-only; `$` in Go (no m flag) is the very end, which is \Z here.
_WS = "[\t\n\f\r ]"
_MATCHER_RE = re.compile(
    rf"\A{_WS}*([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}*(=~|=|!=|!~){_WS}*(.*?){_WS}*\Z", re.DOTALL
)


def parse_matchers(s: str) -> list[Matcher]:
    """Parse `{a="1", b=~"x.*"}`: braces optional, commas inside quotes kept, a trailing comma
    allowed. `{}` and the empty string give an empty list."""
    s = s.removeprefix("{").removesuffix("}")
    tokens = _split_outside_quotes(s)
    return [parse_matcher(token) for token in tokens]


def _split_outside_quotes(s: str) -> list[str]:
    # The same small state machine as Alertmanager's: `\"` does not toggle quoting, and a comma
    # leaves the escape state alone (so `"a\,"` keeps the quote escaped, as there).
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for ch in s:
        if ch == ",":
            if not inside_quotes:
                tokens.append("".join(token))
                token.clear()
                continue
        elif ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    if last := "".join(token).strip():
        tokens.append(last)
    return tokens


def parse_matcher(s: str) -> Matcher:
    """Parse one matcher: `name`, an operator, then a value that may be double-quoted."""
    m = _MATCHER_RE.match(s)
    if m is None:
        raise MatcherError(
            f"bad matcher format: {s!r} (want a label name [a-zA-Z_:][a-zA-Z0-9_:]*, "
            "one of = != =~ !~, then a value)"
        )
    name, op, raw = m.group(1), cast(Op, m.group(2)), m.group(3)
    return Matcher(name, op, _unescape_value(raw, s))


def _unescape_value(raw: str, whole: str) -> str:
    # OpenMetrics escapes (\" \\ \n); any other backslash, and a trailing one, is literal.
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    escaped = False
    last = len(body) - 1
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(ch, "\\" + ch))
        elif ch == "\\":
            if i < last:
                escaped = True
            else:
                out.append("\\")
        elif ch == '"':
            if not quoted or i < last:
                raise _unescaped_quote(raw, whole)
            quoted = False  # the closing quote
        else:
            out.append(ch)
    if quoted:
        raise _unescaped_quote(raw, whole)
    return "".join(out)


def _unescaped_quote(raw: str, whole: str) -> MatcherError:
    return MatcherError(
        f'matcher value contains unescaped double quote: {raw} (in {whole!r}; write \\" inside '
        "a value, and close an opening quote)"
    )


# --- printing -----------------------------------------------------------------------------


def _openmetrics_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _is_reserved(ch: str) -> bool:
    return ch.isspace() or ch in "{}!=~,\\\"'`"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _go_quote(s: str) -> str:
    # strconv.Quote, near enough: printable characters stay, the rest are escaped.
    out = ['"']
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


# --- regexes: RE2 meaning in Python's re --------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# RE2's Perl classes are ASCII-only; Python's are Unicode-aware.
_PERL_IN_CLASS = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}
_PERL_OUTSIDE = {k: f"[{v}]" for k, v in _PERL_IN_CLASS.items()}
_PERL_OUTSIDE |= {k.upper(): f"[^{v}]" for k, v in _PERL_IN_CLASS.items()}
_RE2_FLAGS = set("imsU")


def _compile(name: str, op: str, pattern: str) -> re.Pattern[str]:
    try:
        translated = _Re2Translator(pattern).translate()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # re's "possible nested set" FutureWarnings
            return re.compile(translated)
    except (re.error, _Unsupported) as e:
        where = f"{name}{op}{_go_quote(pattern)}"
        raise MatcherError(f"invalid regular expression in matcher {where}: {e}") from None


class _Unsupported(Exception):
    pass


_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"([A-Za-z]*(?:-[A-Za-z]*)?)([:)])")


class _Re2Translator:
    """One left-to-right pass; each method consumes one construct and returns nothing."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        # Per open group, the RE2 `(?flags)` set inside it: re only takes scoped `(?flags:...)`
        # there, so each is opened as a scoped group and closed at `|` (reopened after) and `)`.
        self.flags: list[list[str]] = [[]]

    def translate(self) -> str:
        while self.i < len(self.p):
            self._step()
        self._close_flags()
        if len(self.flags) > 1:
            raise _Unsupported("missing closing )")
        return "".join(self.out)

    def _step(self) -> None:
        p, i = self.p, self.i
        ch = p[i]
        if ch == "\\":
            self._escape(in_class=False)
        elif ch == "[":
            self._char_class()
        elif ch == "(":
            self._group()
        elif ch == ")":
            if len(self.flags) == 1:
                raise _Unsupported("unexpected )")
            self._close_flags()
            self.flags.pop()
            self._emit(")", 1)
        elif ch == "|":
            reopen = self.flags[-1]
            self._close_flags()
            self._emit("|", 1)
            for f in reopen:
                self.out.append(f"(?{f}:")
            self.flags[-1] = reopen
        elif ch == "{":
            self._brace()
        elif ch in "*+?}" and p.startswith("+", i + 1):
            raise _Unsupported(f"bad repetition operator: {ch}+")
        else:
            self._emit(ch, 1)

    def _emit(self, text: str, consumed: int) -> None:
        self.out.append(text)
        self.i += consumed

    def _close_flags(self) -> None:
        self.out.append(")" * len(self.flags[-1]))
        self.flags[-1] = []

    def _escape(self, in_class: bool) -> None:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            raise _Unsupported("trailing backslash at end of expression")
        nxt = p[i + 1]
        if nxt == "Q" and not in_class:  # \Q...\E is literal text up to \E or the end
            end = p.find("\\E", i + 2)
            stop = len(p) if end == -1 else end
            self.out.append(re.escape(p[i + 2 : stop]))
            self.i = stop if end == -1 else end + 2
        elif (nxt.isdigit() and nxt != "0") or nxt == "Z":
            raise _Unsupported(f"invalid escape sequence: \\{nxt}")
        elif nxt == "z" and not in_class:
            self._emit("\\Z", 2)
        elif nxt in _PERL_IN_CLASS and in_class:
            self._emit(_PERL_IN_CLASS[nxt], 2)
        elif nxt in _PERL_OUTSIDE and not in_class:
            self._emit(_PERL_OUTSIDE[nxt], 2)
        else:
            self._emit(p[i : i + 2], 2)

    def _char_class(self) -> None:
        p = self.p
        self._emit("[", 1)
        if p.startswith("^", self.i):
            self._emit("^", 1)
        if p.startswith("]", self.i):  # a leading ']' is literal in both dialects
            self._emit("\\]", 1)
        while self.i < len(p):
            ch = p[self.i]
            if ch == "]":
                self._emit("]", 1)
                return
            if ch == "\\":
                self._escape(in_class=True)
            elif p.startswith("[:", self.i) and (end := p.find(":]", self.i + 2)) != -1:
                self._emit(_posix_class(p[self.i + 2 : end]), end + 2 - self.i)
            elif ch == "[":
                self._emit("\\[", 1)  # literal in RE2; re would warn and may read a nested set
            else:
                self._emit(ch, 1)
        raise _Unsupported("missing closing ]")

    def _group(self) -> None:
        rest = self.p[self.i + 1 :]
        if not rest.startswith("?"):
            self.flags.append([])
            self._emit("(", 1)
        elif rest.startswith(("?P<", "?<")) and not rest.startswith(("?<=", "?<!")):
            self.flags.append([])
            self._emit("(?P<", 4 if rest.startswith("?P<") else 3)
        else:
            self._flag_group(rest[1:])

    def _flag_group(self, rest: str) -> None:
        if rest.startswith(":"):  # (?:re), a non-capturing group, the same in both
            self.flags.append([])
            self._emit("(?:", 3)
            return
        m = _FLAGS.match(rest)
        spec = m.group(1) if m else ""
        if m is None or not spec.replace("-", "") or spec.endswith("-"):
            raise _Unsupported(f"invalid or unsupported Perl syntax: (?{rest[:1]}")
        if set(spec.replace("-", "")) - _RE2_FLAGS:
            raise _Unsupported(f"invalid or unsupported Perl syntax: (?{spec}")
        if "U" in spec:
            raise _Unsupported("the ungreedy flag (?U) is not supported by this implementation")
        consumed = 2 + len(m.group(0))
        if m.group(2) == ":":
            self.flags.append([])
            self._emit(f"(?{spec}:", consumed)
        else:  # (?flags): scoped to the rest of the enclosing group
            self.flags[-1].append(spec)
            self._emit(f"(?{spec}:", consumed)

    def _brace(self) -> None:
        m = _REPEAT.match(self.p, self.i)
        if m is None:  # RE2 reads a '{' that starts no repetition (e.g. "{,3}") literally
            self._emit("\\{", 1)
            return
        low, high = int(m.group(1)), m.group(3)
        if low > 1000 or (high and int(high) > 1000):
            raise _Unsupported(f"invalid repeat count: {m.group(0)}")
        if self.p.startswith("+", m.end()):  # possessive in re, an error in RE2
            raise _Unsupported(f"bad repetition operator: {m.group(0)}+")
        self._emit(m.group(0), m.end() - self.i)


def _posix_class(name: str) -> str:
    ranges = _POSIX_CLASSES.get(name.removeprefix("^"))
    if ranges is None:
        raise _Unsupported(f"invalid character class range: [:{name}:]")
    if name.startswith("^"):
        raise _Unsupported(f"negated POSIX class [:{name}:] is not supported here")
    return ranges
