# rotator: keeps the "Sign in with Apple" client secret of an Auth0 connection fresh.
#
#   docker build -t rotator .
#   docker run --rm rotator --help
#
# deploy/README.md says which recipe (compose, Kubernetes, systemd, cron) to
# pick. No secret is baked into this image: the M2M client secret and the .p8
# key arrive at run time as files (AUTH0_CLIENT_SECRET_FILE,
# APPLE_PRIVATE_KEY_FILE) and the config as a read-only mount (ROTATOR_CONFIG).
#
# Both stages use the same base image: the venv copied from the builder keeps
# symlinks to the builder's /usr/local/bin/python3.

# ---- builder: build the wheel, install it and its dependencies into /opt/venv
FROM python:3.12-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY rotator/ rotator/

# The wheel is built in an isolated environment (setuptools from the index, as
# pyproject.toml's build-system asks); the venv gets the wheel and its
# dependencies, byte-compiled at install time, and nothing from the source tree.
# The builder's pip installs into it (--python): the runtime venv carries no pip.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir /wheels/rotator-*.whl \
    && /opt/venv/bin/rotator --version

# ---- runtime: the venv, a non-root user, nothing else
FROM python:3.12-slim-bookworm

LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Rotates the Sign in with Apple client secret of an Auth0 custom social connection" \
      org.opencontainers.image.licenses="MIT"

# A fixed uid/gid, used numerically below so Kubernetes' runAsNonRoot can
# verify it, and so mounted secrets can be made readable to it (fsGroup,
# --chown, chmod) without guessing.
RUN groupadd --system --gid 10001 rotator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin rotator

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROTATOR_LOG_FORMAT=json

USER 10001:10001

# /healthz, /readyz and /metrics of `rotator start` (server.listen / ROTATOR_LISTEN).
EXPOSE 8080

# No curl in slim images: Python asks. The empty ProxyHandler keeps an
# HTTP(S)_PROXY set for the Auth0 calls from routing this loopback probe away.
# Meaningful for `rotator start` only; disable it for one-shot runs
# (docker run --no-healthcheck ... run-once).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8080/healthz', timeout=3)"]

ENTRYPOINT ["rotator"]
CMD ["start"]
