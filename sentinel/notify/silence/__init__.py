"""Silences: Alertmanager v2 matchers with a time range. An active silence mutes every alert
whose labels match all its matchers, including alerts that appear after it was made."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sentinel.model import rfc3339
from sentinel.notify.matchers import Matcher, matches_all

__all__ = ["Matcher", "Muter", "Silence", "SilenceRepo", "Silencer"]


class Muter(Protocol):
    def muted_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of whatever mutes these labels now (empty: not muted)."""
        ...


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def to_api(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [m.to_api() for m in self.matchers],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "updatedAt": rfc3339(self.updated_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "status": {"state": self.state(now)},
        }

    @classmethod
    def from_api(cls, body: Any, now: float) -> Silence:
        """Validate an Alertmanager v2 PostableSilence; ValueError names what is wrong."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        matchers = body.get("matchers")
        if not isinstance(matchers, list) or not matchers:
            raise ValueError("matchers: at least one matcher is required")
        parsed = tuple(Matcher.from_api(m) for m in matchers)
        if all(m.matches({}) for m in parsed):
            raise ValueError("matchers: at least one matcher must not match the empty string")
        starts = _time(body.get("startsAt"), "startsAt", default=now)
        ends = _time(body.get("endsAt"), "endsAt", default=None)
        if ends <= starts:
            raise ValueError("endsAt must be after startsAt")
        if ends <= now:
            raise ValueError("endsAt is in the past")
        created_by = body.get("createdBy") or ""
        comment = body.get("comment") or ""
        if not isinstance(created_by, str) or not isinstance(comment, str):
            raise ValueError("createdBy and comment must be strings")
        silence_id = body.get("id") or str(uuid.uuid4())
        return cls(
            str(silence_id),
            parsed,
            max(starts, now) if starts < now else starts,
            ends,
            created_by,
            comment,
            now,
        )

    def expire(self, now: float) -> Silence:
        return replace(
            self, ends_at=min(self.ends_at, now), starts_at=min(self.starts_at, now), updated_at=now
        )


def _time(value: Any, name: str, default: float | None) -> float:
    if value in (None, ""):
        if default is None:
            raise ValueError(f"{name} is required")
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:  # RFC 3339 requires an offset; read a missing one as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class SilenceRepo(Protocol):
    """What the silencer persists through; `repo.SqlSilenceRepo` is the SQLite one."""

    def all(self) -> list[Silence]: ...

    def save(self, s: Silence) -> None: ...

    def delete_expired(self, before: float) -> int: ...


class Silencer:
    """The silences in force, kept in memory and written through to storage."""

    def __init__(self, repo: SilenceRepo | None) -> None:
        self.repo = repo
        self._lock = threading.Lock()
        self._silences: dict[str, Silence] = {s.id: s for s in repo.all()} if repo else {}

    def all(self) -> list[Silence]:
        with self._lock:
            return list(self._silences.values())

    def refresh(self) -> None:
        """Read the silences again: replicas sharing storage each make them (sentinel/ha)."""
        if self.repo is None:
            return
        silences = {s.id: s for s in self.repo.all()}
        with self._lock:
            self._silences = silences

    def get(self, silence_id: str) -> Silence | None:
        with self._lock:
            return self._silences.get(silence_id)

    def put(self, silence: Silence) -> Silence:
        if self.repo is not None:
            self.repo.save(silence)
        with self._lock:
            self._silences[silence.id] = silence
        return silence

    def expire(self, silence_id: str, now: float) -> Silence | None:
        current = self.get(silence_id)
        if current is None:
            return None
        if current.state(now) == "expired":
            return current
        return self.put(current.expire(now))

    def muted_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        with self._lock:
            silences = list(self._silences.values())
        return [s.id for s in silences if s.mutes(labels, now)]

    def gc(self, now: float, retention: float = 5 * 86400) -> int:
        """Expired silences stay listed for a while (as in Alertmanager), then go.
        Returns how many went."""
        with self._lock:
            gone = [i for i, s in self._silences.items() if s.ends_at < now - retention]
            for silence_id in gone:
                del self._silences[silence_id]
        if gone and self.repo is not None:
            self.repo.delete_expired(now - retention)
        return len(gone)
