"""SQLite persistence: alert state now; notification log, outbox and silences build on it."""
