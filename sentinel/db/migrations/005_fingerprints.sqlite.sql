-- Alert fingerprints become Prometheus's label-set fingerprint (FNV-1a, sentinel/fingerprint.py);
-- before, they were the first 16 hex digits of a SHA-256. The alerts table is re-keyed and every
-- list of fingerprints the notification log and the outbox hold is rewritten, so after the
-- upgrade a firing alert is the same alert (no re-page) and a queued resolve still resolves it.
-- sentinel_fingerprint(labels) and sentinel_fingerprint_v1(labels) take a JSON object of labels;
-- the connection provides them (sentinel/db/sqlite.py). A PostgreSQL port needs the same two.
CREATE TEMP TABLE fingerprint_map (old TEXT PRIMARY KEY, new TEXT NOT NULL);
INSERT OR IGNORE INTO fingerprint_map
    SELECT fingerprint, sentinel_fingerprint(labels) FROM alerts;
-- A queued notification may hold alerts the book has already let go of.
INSERT OR IGNORE INTO fingerprint_map
    SELECT sentinel_fingerprint_v1(json_extract(a.value, '$.labels')),
           sentinel_fingerprint(json_extract(a.value, '$.labels'))
    FROM outbox, json_each(outbox.alerts) AS a;

UPDATE alerts SET fingerprint = (SELECT new FROM fingerprint_map WHERE old = alerts.fingerprint);

-- A fingerprint with no labels to recompute it from (its alert is gone from the book and from
-- the outbox) is kept as it is: it names nothing that can still fire.
UPDATE nflog SET
    firing = (SELECT json_group_array(v) FROM (
        SELECT coalesce(m.new, f.value) AS v FROM json_each(nflog.firing) AS f
        LEFT JOIN fingerprint_map AS m ON m.old = f.value ORDER BY v)),
    resolved = (SELECT json_group_array(v) FROM (
        SELECT coalesce(m.new, f.value) AS v FROM json_each(nflog.resolved) AS f
        LEFT JOIN fingerprint_map AS m ON m.old = f.value ORDER BY v));

UPDATE outbox SET
    firing = (SELECT json_group_array(v) FROM (
        SELECT coalesce(m.new, f.value) AS v FROM json_each(outbox.firing) AS f
        LEFT JOIN fingerprint_map AS m ON m.old = f.value ORDER BY v)),
    resolved = (SELECT json_group_array(v) FROM (
        SELECT coalesce(m.new, f.value) AS v FROM json_each(outbox.resolved) AS f
        LEFT JOIN fingerprint_map AS m ON m.old = f.value ORDER BY v));

DROP TABLE fingerprint_map;
