-- The leader lease of the replicas sharing this database (one cluster per database, or per
-- schema through the URL's search_path): one row, taken and renewed by sentinel/ha/lease.py
-- with the database's clock. `epoch` grows on every takeover; `token` is the holding process
-- (a restarted replica with the same name is a new holder). SQLite never holds a lease.
CREATE TABLE IF NOT EXISTS ha_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,   -- ha.replica of the leader
    token      TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at REAL NOT NULL,   -- seconds since 1970, database clock
    renewed_at REAL NOT NULL
);
