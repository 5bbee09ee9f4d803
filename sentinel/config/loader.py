"""Reading rules.yaml so that no file can hurt: bounded reads, a YAML loader with limits,
`${VAR}` expansion and `<key>_file` secrets.

Nothing here imports pydantic: `sentinel check` refuses a hostile file (a billion-laughs
alias bomb, nesting 10,000 deep, a duplicate key, a 5 GB file) in milliseconds, before the
schema is even built. Every problem is a ConfigError line `path.to[2].key: reason`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A real config is a few KiB (rules.example.yaml: 4 KiB); the pure-Python YAML parser reads
# about 100 KiB/s on a busy core, so this also bounds the time spent parsing (~2 s).
MAX_CONFIG_BYTES = 256 * 1024
# A secret is a token, a routing key, a password or a URL: never more than this.
MAX_SECRET_BYTES = 64 * 1024
MAX_DEPTH = 64  # nesting of mappings and sequences (routes nest two levels per route)
MAX_ALIASES = 1_000
# After expanding aliases: more nodes or scalar characters than this is an alias bomb.
MAX_NODES = 100_000
MAX_CHARS = 4 * 1024 * 1024
# A number spelled with more characters than this is refused before Python converts it (a
# 5,000-digit int raises ValueError in int(); a long sexagesimal 1:2:3:... costs quadratic time).
MAX_NUMBER_CHARS = 100

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def default_path() -> str:
    return os.environ.get("SENTINEL_CONFIG") or "./rules.yaml"


_PLAIN_KEY = re.compile(r"[^\s\[\]]{1,64}")


def fmt_path(path: tuple[Any, ...] | list[Any]) -> str:
    """`rules[2].threshold`; a key that would not read as one (empty, spaces, a newline, not a
    string, very long) is shown as `["its repr"]`, so an error stays one readable line."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part) and part.isprintable():
            out += ("." if out else "") + part
        else:
            shown = repr(part)
            out += f"[{shown if len(shown) <= 40 else shown[:39] + '…'}]"
    return out or "(top level)"


def _cut(text: str, width: int = 80) -> str:
    """A user's value in an error line, cut so that one line stays one readable line (a line
    break in it is shown as \\n: a `token_file: "\\n"` must not split the error in two)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= width else f"{text[: width - 1]}…"


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "line ?"


class _LimitError(Exception):
    """A limit of the loader was hit: one error line, the file is not read further."""


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with the limits above, checked on the node graph before a single
    Python object is built (construction of a bomb would be instant, its use exponential)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[Any] = []
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # index is the key node for a mapping's value, the position in a sequence, None for a
        # key or the document root: enough to name where a limit was hit.
        if isinstance(index, ScalarNode):
            self._path.append(index.value)
        elif isinstance(index, int):
            self._path.append(index)
        else:
            self._path.append(None)
        try:
            if len(self._path) > MAX_DEPTH:
                raise _LimitError(f"{self._here()}: nested deeper than {MAX_DEPTH} levels")
            if self.check_event(AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _LimitError(f"{self._here()}: more than {MAX_ALIASES} YAML aliases")
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def _here(self) -> str:
        path = [p for p in self._path if p is not None]
        return fmt_path(path[:8]) + ("..." if len(path) > 8 else "")

    def load(self) -> Any:
        try:
            node = self.get_single_node()
            if node is None:
                return None
            errors: list[str] = []
            _Walk(errors).size(node, ())
            if errors:
                raise ConfigError(errors)
            return self.construct_document(node)
        finally:
            self.dispose()


class _Walk:
    """One pass over the composed graph (each node once): the size once aliases are expanded,
    recursive aliases, duplicate keys and over-long numbers, each named by its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        self.memo: dict[int, tuple[int, int]] = {}
        self.open: set[int] = set()

    def size(self, node: Node, path: tuple[Any, ...]) -> tuple[int, int]:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.open:
            raise _LimitError(f"{fmt_path(path)}: a YAML alias refers to itself")
        self.open.add(key)
        nodes, chars = 1, 0
        if isinstance(node, ScalarNode):
            chars = len(node.value)
            if node.tag in _NUMBER_TAGS and chars > MAX_NUMBER_CHARS:
                self.errors.append(f"{fmt_path(path)}: number too long ({chars} characters)")
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                n, c = self.size(item, (*path, i))
                nodes, chars = nodes + n, chars + c
        elif isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key_node, value_node in node.value:
                name: Any = key_node.value if isinstance(key_node, ScalarNode) else "?"
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    ident = (key_node.tag, key_node.value)
                    if ident in seen:
                        self.errors.append(
                            f"{fmt_path((*path, name))}: duplicate key (line "
                            f"{key_node.start_mark.line + 1}; first at line "
                            f"{seen[ident].line + 1})"
                        )
                    else:
                        seen[ident] = key_node.start_mark
                for child, child_path in ((key_node, path), (value_node, (*path, name))):
                    n, c = self.size(child, child_path)
                    nodes, chars = nodes + n, chars + c
        self.open.discard(key)
        if nodes > MAX_NODES or chars > MAX_CHARS:
            # Reported at the innermost node past the limit: that is where the aliases multiply.
            raise _LimitError(
                f"{fmt_path(path)}: expands to more than {MAX_NODES:,} YAML nodes or "
                f"{MAX_CHARS >> 20} MiB of text (aliases of aliases?)"
            )
        self.memo[key] = (nodes, chars)
        return nodes, chars


def load_yaml(text: str) -> dict[str, Any]:
    """The top-level mapping of a config text ({} for an empty file), or ConfigError."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([f"(top level): larger than {MAX_CONFIG_BYTES >> 10} KiB"])
    try:
        raw = LimitedLoader(text).load()
    except ConfigError:
        raise
    except _LimitError as e:
        raise ConfigError([str(e)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or str(e)
        raise ConfigError([f"{_where(mark)}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"(top level): invalid YAML: {e}"]) from None
    except (ValueError, OverflowError, RecursionError, MemoryError, TypeError) as e:
        # The limits above should make these impossible; still one line, never a traceback.
        raise ConfigError([f"(top level): invalid YAML: {type(e).__name__}: {e}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): expected a mapping, got {type(raw).__name__}"])
    return raw


def read_file(path: str | os.PathLike[str], limit: int, *, regular_only: bool) -> str:
    """At most `limit` bytes of UTF-8 text, never blocking on a FIFO or reading /dev/zero
    forever. Raises OSError (with strerror) or ValueError with the reason."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY
    if regular_only:
        flags |= os.O_NONBLOCK  # opening a FIFO with no writer would otherwise wait forever
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError("is a directory")
        if not stat.S_ISREG(mode) and (regular_only or not stat.S_ISFIFO(mode)):
            raise ValueError(f"not a regular file ({_file_kind(mode)})")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise ValueError(f"larger than {_fmt_bytes(limit)}")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start})") from None


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def _fmt_bytes(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's top-level mapping, within every limit, or ConfigError."""
    try:
        # A FIFO is allowed here (`-c <(envsubst < rules.tmpl)`); a device is not.
        text = read_file(path, MAX_CONFIG_BYTES, regular_only=False)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    except ValueError as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from None
    return load_yaml(text)


def expand(
    node: Any,
    path: tuple[Any, ...],
    env: Mapping[str, str],
    errors: list[str],
    secret_keys: frozenset[str],
) -> Any:
    """Expand ${VAR} / ${VAR:-default} in every string and resolve `<key>_file` secrets."""
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    errors.append(f"{fmt_path(path)}: environment variable {_cut(name)} is not set")
                    return ""
                return default
            return value

        return _ENV.sub(sub, node)
    if isinstance(node, list):
        return [expand(v, (*path, i), env, errors, secret_keys) for i, v in enumerate(node)]
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            out[key] = expand(value, (*path, key), env, errors, secret_keys)
        for key in [k for k in out if isinstance(k, str) and k.endswith("_file")]:
            base = key[: -len("_file")]
            if base not in secret_keys:
                continue
            where = fmt_path((*path, key))
            file_path = out.pop(key)
            if base in out:
                errors.append(f"{where}: give either {base} or {key}, not both")
                continue
            # On failure the key gets "" so the schema does not add "token: required" to the
            # one line that says why.
            out[base] = ""
            if not isinstance(file_path, str) or not file_path:
                errors.append(f"{where}: expected a file path")
                continue
            try:
                out[base] = read_file(file_path, MAX_SECRET_BYTES, regular_only=True).strip()
            except OSError as e:
                errors.append(f"{where}: cannot read {_cut(file_path)}: {e.strerror or e}")
            except ValueError as e:
                errors.append(f"{where}: cannot read {_cut(file_path)}: {e}")
        return out
    return node
