# sentinel as a sidecar container: config at /etc/sentinel/rules.yaml, state on a volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sentinel ./sentinel
# The postgres extra: the same image runs alone (SQLite) or as an HA replica (storage.url).
RUN pip install '.[postgres]' \
 && useradd --system --uid 10001 --no-create-home --home-dir /var/lib/sentinel sentinel \
 && mkdir -p /etc/sentinel /var/lib/sentinel \
 && chown sentinel:sentinel /var/lib/sentinel \
 && rm -rf /src

COPY rules.example.yaml /etc/sentinel/rules.yaml

ENV SENTINEL_CONFIG=/etc/sentinel/rules.yaml \
    SENTINEL_DB=/var/lib/sentinel/sentinel.db \
    SENTINEL_LISTEN=0.0.0.0:9808
# Without SENTINEL_API_TOKEN the API on 0.0.0.0 is read-only (writes answer 403): pass one
# (-e SENTINEL_API_TOKEN=...) to manage silences through it.

USER sentinel
WORKDIR /var/lib/sentinel
VOLUME ["/var/lib/sentinel"]
EXPOSE 9808

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9808/healthz', timeout=4)"]

# Exec form: sentinel itself is PID 1 (no shell in between), so SIGTERM and SIGHUP reach it.
# Secrets: mount them as files (Docker/Kubernetes secrets under /run/secrets) and name them
# with `<key>_file:` in rules.yaml; they must be readable by uid 10001.
ENTRYPOINT ["sentinel"]
CMD ["run", "--log-format", "json"]
