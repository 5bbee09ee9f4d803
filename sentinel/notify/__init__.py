"""The notification pipeline: route, group, mute (silences, inhibitions), dedup, outbox, send."""
