"""Default message templates and the context every channel renders them with.

A channel's `templates:` entry of the same name replaces a default. `html` renders with
autoescaping, so label values such as `<queue>` cannot inject markup into an email.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

from sentinel.channels.base import Notification
from sentinel.model import Alert, Severity, State, rfc3339
from sentinel.templating import ENV
from sentinel.templating import render as render_text

TEST_MARK = "[TEST]"

# Highest first: the group takes the colour / PagerDuty severity of its worst alert.
SEVERITIES = tuple(s.value for s in Severity)

_TITLE = (
    "[{{ status|upper }}"
    "{% if status == 'firing' %}:{{ firing|length }}{% endif %}] "
    "{{ group_labels.alertname or common_labels.alertname or 'sentinel' }}"
    "{% set rest = group_labels|dictsort|rejectattr(0, 'equalto', 'alertname')|list %}"
    "{% if rest %} ({% for k, v in rest %}{{ k }}={{ v }}{% if not loop.last %} {% endif %}"
    "{% endfor %}){% endif %}"
)

_ALERT_LINE = (
    "{{ a.summary }}\n"
    "  value {{ a.value|number }} (threshold {{ a.threshold|number }})"
    "{% if a.status == 'resolved' %}, resolved {{ a.endsAt }}{% else %}, since {{ a.startsAt }}"
    "{% endif %}\n"
    "  labels: {% for k, v in a.labels|dictsort %}{{ k }}={{ v }}"
    "{% if not loop.last %}, {% endif %}{% endfor %}\n"
    "{% if a.annotations.description %}  {{ a.annotations.description }}\n{% endif %}"
)

_TEXT = (
    "{% if test %}This is a TEST notification sent by `sentinel notify-test`;"
    " no action is needed.\n\n{% endif %}"
    "{% if firing %}Firing ({{ firing|length }}):\n"
    "{% for a in firing %}- " + _ALERT_LINE + "{% endfor %}{% endif %}"
    "{% if firing and resolved %}\n{% endif %}"
    "{% if resolved %}Resolved ({{ resolved|length }}):\n"
    "{% for a in resolved %}- " + _ALERT_LINE + "{% endfor %}{% endif %}"
    "{% if external_url %}\n{{ external_url }}\n{% endif %}"
)

_HTML_ALERTS = (
    "<h3>{{ heading }} ({{ items|length }})</h3><ul>{% for a in items %}"
    "<li><b>{{ a.summary }}</b><br>value {{ a.value|number }}"
    " (threshold {{ a.threshold|number }})"
    "{% if a.status == 'resolved' %}, resolved {{ a.endsAt }}"
    "{% else %}, since {{ a.startsAt }}{% endif %}<br>"
    "{% for k, v in a.labels|dictsort %}<code>{{ k }}={{ v }}</code> {% endfor %}"
    "{% if a.annotations.description %}<br>{{ a.annotations.description }}{% endif %}"
    "</li>{% endfor %}</ul>"
)

_HTML = (
    "<!DOCTYPE html><html><body>"
    "{% if test %}<p><b>This is a TEST notification sent by <code>sentinel notify-test</code>;"
    " no action is needed.</b></p>{% endif %}"
    "<h2>{{ title }}</h2>"
    "{% if firing %}{% with heading='Firing', items=firing %}" + _HTML_ALERTS + "{% endwith %}"
    "{% endif %}"
    "{% if resolved %}{% with heading='Resolved', items=resolved %}"
    + _HTML_ALERTS
    + "{% endwith %}{% endif %}"
    '{% if external_url %}<p><a href="{{ external_url }}">{{ external_url }}</a></p>'
    "{% endif %}</body></html>"
)

DEFAULTS: dict[str, str] = {
    "title": _TITLE,  # Slack header, email Subject, PagerDuty summary
    "text": _TEXT,  # email text part, Slack fallback text and thread reply
    "html": _HTML,  # email HTML part (autoescaped)
    "alert": "{{ alert.summary }}",  # one alert's line in Slack and the log channel
}

_HTML_ENV = ImmutableSandboxedEnvironment(  # sandboxed, as templating.ENV (why there)
    autoescape=True, undefined=jinja2.ChainableUndefined, keep_trailing_newline=False
)
_HTML_ENV.filters.update(ENV.filters)


@lru_cache(maxsize=256)
def _compile_html(source: str) -> jinja2.Template:
    return _HTML_ENV.from_string(source)


def finite(value: float | None) -> float | None:
    """JSON has no NaN or Infinity; an unknowable value is reported as null."""
    return value if value is not None and math.isfinite(value) else None


def severity(alerts: Iterable[Alert]) -> str:
    """The worst `severity` label among `alerts`; "error" when none carries a known one."""
    found = {a.labels.get("severity", "") for a in alerts}
    return next((s for s in SEVERITIES if s in found), Severity.ERROR.value)


def starts_at(alert: Alert) -> str:
    return rfc3339(alert.fired_at if alert.fired_at is not None else alert.active_at) or ""


def common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    """Pairs shared by every map, as Alertmanager's CommonLabels / CommonAnnotations."""
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return dict(sorted(out.items()))


def alert_context(alert: Alert) -> dict[str, Any]:
    resolved = alert.state is State.RESOLVED
    started = alert.fired_at if alert.fired_at is not None else alert.active_at
    return {
        "status": "resolved" if resolved else "firing",
        "rule": alert.rule,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "summary": alert.annotations.get("summary") or alert.labels.get("alertname", alert.rule),
        "severity": alert.labels.get("severity", ""),
        "value": finite(alert.value),
        "threshold": finite(alert.threshold),
        "fingerprint": alert.fingerprint,
        "activeAt": rfc3339(alert.active_at),
        "startsAt": starts_at(alert),
        "endsAt": rfc3339(alert.resolved_at) if resolved else None,
        "duration": alert.resolved_at - started if resolved and alert.resolved_at else None,
    }


def context(n: Notification) -> dict[str, Any]:
    alerts = [alert_context(a) for a in (*n.firing, *n.resolved)]
    return {
        "status": n.status,
        "test": n.test,
        "receiver": n.channel,
        "group_key": n.group_key,
        "group_labels": dict(n.group_labels),
        "common_labels": common([a["labels"] for a in alerts]),
        "common_annotations": common([a["annotations"] for a in alerts]),
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] == "resolved"],
        "severity": severity(n.firing or n.alerts),
        "external_url": n.external_url,
    }


def render(
    name: str,
    n: Notification | Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    """Render template `name` (a channel override first, else the default) for `n`.

    `n` may be a Notification or a context already built by `context()`, so a channel that
    renders several templates builds the context once.
    """
    source = (overrides or {}).get(name, DEFAULTS.get(name, ""))
    ctx = {**(context(n) if isinstance(n, Notification) else n), **extra}
    if name == "html":
        if "title" not in ctx:
            ctx["title"] = render("title", ctx, overrides)
        try:
            return _compile_html(source).render(ctx)
        except jinja2.TemplateError as e:
            return f"<p>[template error: {escape(str(e))}]</p>"
    out = render_text(source, ctx).strip()
    # Marked in code, not in the default template, so an overridden title still says TEST.
    if name == "title" and ctx.get("test") and not out.startswith(TEST_MARK):
        out = f"{TEST_MARK} {out}"
    return out
