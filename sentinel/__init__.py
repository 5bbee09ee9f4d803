"""sentinel: an alerting sidecar for Celery clusters."""

__version__ = "0.2.0"
