-- periodic_task: when each periodic task name was last seen, and until when sentinel was
-- watching it (the restart rule in sentinel/facts/periodic.py reads both).
CREATE TABLE periodic_tasks (
    task       TEXT PRIMARY KEY,
    seen_at    REAL NOT NULL,     -- last task-sent (or task-received, see by_sent)
    by_sent    INTEGER NOT NULL,  -- 1: seen_at is a task-sent event; 0: a task-received
    checked_at REAL NOT NULL      -- when sentinel last wrote this row
);
