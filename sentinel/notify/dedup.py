"""Whether a group needs a notification now: Alertmanager's `needsUpdate`, decided purely."""

from __future__ import annotations

from sentinel.notify.nflog import LogEntry


def notify_reason(
    last: LogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    *,
    repeat: float,
    now: float,
    send_resolved: bool,
) -> str | None:
    """ "new", "changed", "resolved", "repeat", or None for nothing to send.

    All-resolved is reported even without send_resolved, so the log forgets the firing set
    (the sender then records it without contacting the channel); otherwise a re-fire of the
    same alerts would look like old news.
    """
    if last is None:
        return "new" if firing else None
    if not firing <= last.firing:
        return "changed"
    if not firing:
        return "resolved" if last.firing else None
    if send_resolved and not resolved <= last.resolved:
        return "changed"
    if now >= last.sent_at + repeat:
        return "repeat"
    return None
