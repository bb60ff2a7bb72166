# syntax=docker/dockerfile:1.7
# check=skip=SecretsUsedInArgOrEnv

ARG PYTHON_VERSION=3.12
ARG UV_VERSION=0.4.20

############################################################################
# Stage 1: resolve and build wheels for every dependency.
############################################################################
FROM python:${PYTHON_VERSION}-slim AS builder
ARG UV_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update && apt-get install -y --no-install-recommends \
        build-essential \
        libffi-dev \
        libpq-dev \
        libxml2-dev \
        libxslt1-dev \
    && rm -rf /var/lib/apt/lists/*

RUN pip install "uv==${UV_VERSION}"
WORKDIR /app

# Install the dependencies first: they change less often than the code.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-install-project --no-dev

COPY --link . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

############################################################################
# Stage 2: tests run in their own stage so the final image stays small.
############################################################################
FROM builder AS test
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen
RUN --mount=type=secret,id=pypi_token,env=PYPI_TOKEN \
    uv run pytest -q --maxfail=1 --disable-warnings

############################################################################
# Stage 3: the runtime image.
############################################################################
FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="inventory-api" \
      org.opencontainers.image.vendor="Example Corp" \
      org.opencontainers.image.version="2.3.1"

RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update && apt-get install -y --no-install-recommends \
        libpq5 \
        libxml2 \
        libxslt1.1 \
        tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --home-dir /home/app app

COPY --from=builder --chown=app:app /app /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PORT=8000 \
    WEB_CONCURRENCY=4

WORKDIR /app
USER app
EXPOSE 8000/tcp
HEALTHCHECK --interval=15s --timeout=2s --start-period=20s --start-interval=2s --retries=5 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "inventory.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
