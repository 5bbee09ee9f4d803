"""/metrics: one scrape-time collector per source, as prometheus_client's own collectors are
(gc_collector, process_collector), registered by the composition root on a registry of its own.

facts.py    the fact store: events ingested and dropped, and celery-exporter's celery_* families
alerts.py   the alert book: alerts by state, evaluation time, rule errors
delivery.py the sender: notification outcomes, the outbox
storage.py  the database's health

Nothing is counted twice: every value is read from its source when Prometheus scrapes, so a
series exists exactly as long as its source does (a worker pruned from the store simply stops
being reported, with no series to delete by hand).
"""
