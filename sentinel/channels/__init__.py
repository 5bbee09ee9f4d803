"""Channels: one module per kind behind the NOTIFIERS registry (see base.py)."""
