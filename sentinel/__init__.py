"""sentinel: an alerting sidecar for Celery clusters."""

__version__ = "0.1.0"
