# crm-lead-connector: `connector serve` (webhooks, behaviour events, poll loop, /healthz, /readyz, /metrics).
# Config: mount a TOML file and set CONNECTOR_CONFIG=/etc/connector/config.toml, and/or set CONNECTOR_<SECTION>__<KEY>
# variables. Secrets: mount files and point the *_file keys at them (e.g. CONNECTOR_HUBSPOT__ACCESS_TOKEN_FILE=/run/secrets/hubspot_token).

# Reproducible builds: the base is pinned to a patch release on a named Debian release (both stages), and every
# dependency comes from requirements.lock with its sha256 (pip refuses anything else with --require-hashes).
# The base is not pinned by digest yet: the digest could not be looked up where this was written (no registry
# access). Add it where you can: `docker buildx imagetools inspect python:3.11.11-slim-bookworm`, then
# FROM python:3.11.11-slim-bookworm@sha256:<digest>.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock is generated from pyproject.toml for Linux x86_64 / Python 3.11 (the command is in its header); it also
# pins the build backend (hatchling), so the project itself is built without fetching anything unpinned.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md config.example.toml ./
COPY connector ./connector
COPY bench ./bench
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONNECTOR_SERVICE__HOST=0.0.0.0 \
    CONNECTOR_SERVICE__PORT=8080 \
    CONNECTOR_STORE__URL=sqlite:////var/lib/connector/state.db
RUN groupadd --system --gid 10001 connector \
    && useradd --system --uid 10001 --gid connector --home-dir /var/lib/connector --create-home --shell /usr/sbin/nologin connector
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/connector
# The default SQLite state store lives here; use [store] url = postgresql+psycopg://... for several replicas.
VOLUME ["/var/lib/connector"]
EXPOSE 8080
# slim images have no curl: probe with the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONNECTOR_SERVICE__PORT', '8080'), timeout=4)"]
# `connector serve` drains on SIGTERM within [service] grace_seconds (keep it below the orchestrator's kill timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["connector"]
CMD ["serve"]
