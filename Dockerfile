# bookshelf in a container, configured only by environment variables (see README, Deploying).
#
#   docker build -t bookshelf .
#   docker run -p 8000:8000 -v bookshelf-data:/data bookshelf      # SQLite in /data
#   docker run -p 8000:8000 -e DATABASE_URL=postgres://... -e REDIS_URL=redis://... bookshelf
#
# tests/e2e/test_container_recipe.py replays this file's COPY, RUN, ENV, ENTRYPOINT, CMD and
# HEALTHCHECK lines in a fresh virtualenv and starts the server with them: keep each RUN a
# plain shell command, and paths under /src, /opt/venv and /data.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build: the project and its pinned dependencies into a virtualenv. Every dependency ships
# manylinux wheels, so no compiler is needed; the wheel build itself runs here only.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml main.py ./
COPY api ./api
COPY db ./db
RUN python -m venv /opt/venv
RUN /opt/venv/bin/pip install --no-cache-dir /src

# Run: the virtualenv, a non-root user, and nothing else of the build.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:///data/bookshelf.sqlite3
RUN groupadd --system --gid 10001 bookshelf \
    && useradd --system --uid 10001 --gid bookshelf --home-dir /data --shell /usr/sbin/nologin bookshelf \
    && mkdir -p /data \
    && chown bookshelf:bookshelf /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/entrypoint.sh /opt/venv/bin/bookshelf-entrypoint
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# No curl in the slim image: the standard library asks /healthz (non-2xx raises: exit 1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT}/healthz', timeout=4)"
# The entrypoint sets WORKERS from the container's CPU limit, then execs the CMD as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bookshelf-entrypoint"]
CMD ["python", "-m", "main", "serve"]
