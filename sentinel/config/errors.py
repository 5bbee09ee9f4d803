"""pydantic's validation errors as rules.yaml lines: `path.to[2].key: reason`, one per problem,
in the user's words (the bound a value broke, the kind a rule could be)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sentinel.config.loader import fmt_path
from sentinel.units import brief

_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def error_lines(exc: ValidationError, raw: Any) -> list[str]:
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
            msg = (
                f"unknown {tag} {brief(ctx.get('tag'))}; expected one of {ctx.get('expected_tags')}"
            )
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
        lines.append(f"{fmt_path(tuple(cleaned))}: {msg}")
    return lines
