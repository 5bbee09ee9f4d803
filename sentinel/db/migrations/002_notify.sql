-- What was delivered: one row per (group, channel), written only after a send succeeded.
CREATE TABLE nflog (
    group_key TEXT NOT NULL,
    channel   TEXT NOT NULL,
    firing    TEXT NOT NULL,  -- JSON list of fingerprints firing in the delivered message
    resolved  TEXT NOT NULL,  -- JSON list of fingerprints resolved in it
    sent_at   REAL NOT NULL,
    memo      TEXT NOT NULL,  -- JSON object the channel returned (Slack ts, email Message-ID)
    PRIMARY KEY (group_key, channel)
);

-- What was decided and not yet delivered: at most one row per (group, channel); a newer
-- decision rewrites the row (bumping version) instead of queueing a second message.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    group_labels    TEXT NOT NULL,  -- JSON object
    status          TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    alerts          TEXT NOT NULL,  -- JSON list of alerts as they were when decided
    firing          TEXT NOT NULL,  -- JSON list of fingerprints
    resolved        TEXT NOT NULL,  -- JSON list of fingerprints
    reason          TEXT NOT NULL,
    created_at      REAL NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    UNIQUE (group_key, channel)
);

CREATE TABLE silences (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,  -- JSON list of {name, value, isRegex, isEqual}
    starts_at   REAL NOT NULL,
    ends_at     REAL NOT NULL,
    created_by  TEXT NOT NULL,
    comment     TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
