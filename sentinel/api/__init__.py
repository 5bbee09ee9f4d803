"""The HTTP API: health, Prometheus metrics, alerts, rules and silences (see CONTRACT.md)."""
