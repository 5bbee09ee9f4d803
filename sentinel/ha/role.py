"""A replica's role in an HA pair, as /readyz, /metrics and /api/v2/status read it: the small
port another module (the v2 status endpoint) reads without knowing the lease."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Role:
    """What /readyz, /metrics and /api/v2/status say about this replica."""

    replica: str
    leader: bool
    epoch: int | None  # the lease's epoch as last seen (ours while leading)
    holder: str | None  # the replica holding the lease as last seen, None if nobody
    renew_failures: int
    takeovers: int

    @property
    def name(self) -> str:
        return "leader" if self.leader else "follower"
