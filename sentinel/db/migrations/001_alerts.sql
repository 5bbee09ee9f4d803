CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    labels      TEXT NOT NULL,  -- JSON object
    annotations TEXT NOT NULL,  -- JSON object
    state       TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    active_at   REAL NOT NULL,
    fired_at    REAL,
    resolved_at REAL,
    value       REAL,
    threshold   REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX alerts_rule ON alerts (rule);
