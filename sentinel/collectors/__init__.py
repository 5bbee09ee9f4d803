"""Collectors: the event stream, inspect snapshots and broker queue depths, feeding the store."""
