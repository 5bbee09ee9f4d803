"""`sentinel demo`: real Celery workers on a local filesystem broker, and sentinel watching them.

Modules, in the order data flows: app (the Celery app the workers run), producer (the traffic),
scenario (the generated rules.yaml), procs (child processes), receiver (the webhook that
records pages), console (the live view and the summary), main (orchestration).
"""
