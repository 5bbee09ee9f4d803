-- Every notification sent or attempted, for the status page and /api/v1/notifications: one row
-- per attempt. Bounded by the maintenance job (storage.notification_history: keep, max_rows).
CREATE TABLE notification_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    channel      TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    group_labels TEXT NOT NULL,  -- JSON object
    status       TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    alerts       TEXT NOT NULL,  -- JSON list of {fingerprint, alertname, state}
    attempt      INTEGER NOT NULL,  -- 1 for the first try of this decision
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'retry', 'failed', 'dropped')),
    error        TEXT
);
CREATE INDEX notification_history_at ON notification_history (at);
CREATE INDEX notification_history_channel ON notification_history (channel, id);
