"""Database engines: connections, migrations and health, nothing domain-specific. The domain
repositories (alerts/repo.py, notify/nflog.py, notify/outbox.py, notify/silence/repo.py) sit on
the narrow `transaction()` / `query()` interface an engine offers."""
