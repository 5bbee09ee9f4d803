"""/healthz and /readyz.

Alive means the process answers. Ready means sentinel can see the cluster (the event stream is
subscribed and the last inspect round reached the broker recently) and can keep its state (the
database is writable; while it is not, sentinel pages from memory and says so here). An
inspect round with no worker answering still counts: "no workers" is a fact the rules alert
on, not a blind spot.
"""

from __future__ import annotations

from sentinel.api.http import Request, Response, text
from sentinel.api.ports import HealthFacts, HealthPort
from sentinel.clock import Clock
from sentinel.ha.role import Role


def not_ready(facts: HealthFacts, now: float) -> list[str]:
    """Why sentinel is not ready; empty when it is."""
    reasons: list[str] = []
    events = facts.probes.get("events")
    inspect = facts.probes.get("inspect")
    events_error = events.error if events is not None and not events.ok else None
    inspect_ok_at = inspect.ok_at if inspect is not None else None
    inspect_error = inspect.error if inspect is not None and not inspect.ok else None

    if not facts.events_connected:
        reasons.append(
            f"events: not connected ({events_error})" if events_error else "events: not connected"
        )

    storage = facts.storage
    if storage is not None and not storage.healthy:
        # Still paging, from memory; but not ready: a restart now would lose the state.
        reasons.append(f"storage: {storage.reason}")

    celery = facts.celery
    # A round is due every interval and may take up to timeout; one late round is tolerated.
    stale_after = 2 * celery.inspect_interval + celery.inspect_timeout
    if inspect_error is not None:
        reasons.append(f"inspect: {inspect_error}")
    elif inspect_ok_at is None:
        reasons.append("inspect: no successful round yet")
    elif now - inspect_ok_at > stale_after:
        reasons.append(
            f"inspect: last successful round {now - inspect_ok_at:.0f}s ago "
            f"(stale after {stale_after:g}s)"
        )
    return reasons


class Health:
    def __init__(self, health: HealthPort, clock: Clock) -> None:
        self.port = health
        self.clock = clock

    def healthz(self, request: Request) -> Response:
        return text("ok\n")

    def readyz(self, request: Request) -> Response:
        facts = self.port.health()
        reasons = not_ready(facts, self.clock.now())
        # A follower is ready too (it evaluates and serves the API); the role is said, not
        # judged, so a load balancer keeps both replicas.
        role = role_line(facts.role) if facts.role is not None else ""
        if reasons:
            return text("; ".join(reasons) + "\n" + role, 503)
        return text("ok\n" + role)


def role_line(r: Role) -> str:
    epoch = "-" if r.epoch is None else r.epoch
    holder = "" if r.leader else f", leader {r.holder or 'none'}"
    return f"ha: {r.replica} is {r.name} (epoch {epoch}{holder})\n"
