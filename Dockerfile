# syntax=docker/dockerfile:1
# Build stage: install the project and its dependencies into a virtualenv.
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
# Bytecode compiled here: the runtime user cannot write it, and compiling every module at
# each start made a worker take over 15 s to boot on a busy machine.
RUN /opt/venv/bin/pip install .

# Runtime stage: the virtualenv, migrations and a non-root user; no build tools.
FROM python:3.11.10-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUN_MIGRATIONS=1
RUN groupadd --system --gid 10001 jambo \
    && useradd --system --uid 10001 --gid jambo --home-dir /srv/jambo --create-home jambo
WORKDIR /srv/jambo
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# DATABASE_URL must be set in a container: the embedded PostgreSQL is for development.
CMD ["jambo", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
