"""Rule kinds: each module turns facts into one Sample per instance (queue, task, worker)."""
