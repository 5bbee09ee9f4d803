"""rules.yaml: strict, frozen pydantic models, environment expansion, `<key>_file` secrets.

`load(path)` returns a Config or raises ConfigError carrying every problem found, each as
`path.to[2].key: reason`, so `sentinel check` can list them all at once.

- loader.py: YAML with its limits, `${VAR}` expansion, `<key>_file` secrets
- schema.py: the sections, with the rule and channel unions from their registries; validate
- errors.py: validation errors as `path: reason` lines
- check.py: `sentinel check` (errors, warnings, placeholder secrets)
- field types shared with the rule and channel schemas: `sentinel.fields`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentinel.config.loader import ConfigError, default_path

if TYPE_CHECKING:
    from sentinel.config.schema import SECRET_KEYS, Config, load, parse, validate

_SCHEMA = frozenset({"SECRET_KEYS", "Config", "load", "parse", "validate"})


def __getattr__(name: str) -> Any:
    # The schema (pydantic, jinja2, the rule and channel registries) is imported at first use,
    # not with the loader: `sentinel check` refuses a hostile file before paying for it.
    if name in _SCHEMA:
        from sentinel.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SECRET_KEYS", "Config", "ConfigError", "default_path", "load", "parse", "validate"]
