"""High availability on PostgreSQL: replicas share storage.url, one holds the lease and sends.

Every replica collects and evaluates (a follower's alert state and group timers are warm);
only the lease holder decides (outbox), sends and records (nflog) and writes alert state, each
write under its epoch, which the database refuses once a newer epoch holds the lease or it
expired (migrations/007_ha_lease.postgresql.sql). lease.py takes and keeps the lease;
alerts.py keeps a follower's alert book from writing; metrics.py puts the role on /metrics.
"""
