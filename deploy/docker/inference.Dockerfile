# syntax=docker/dockerfile:1
# Argus inference stage. Build the wheel, then the image, from the repository root:
#   rm -rf dist && .venv/bin/uv build --wheel --out-dir dist
#   docker build -f deploy/docker/inference.Dockerfile -t registry.example.com/argus/inference:0.1.0 .
# The image installs that wheel (argus, argus_services, argus_data: models and demo assets) and nothing
# of the source tree; the build context is only dist/*.whl (this file's .dockerignore).
# Extras: [kafka,triton] — Kafka and the Triton gRPC client (models run in Triton, not here).
# Runs as UID 10001 with a read-only root filesystem; writable paths are emptyDirs (/tmp, /var/lib/argus).

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARGUS_DATA_DIR=/var/lib/argus \
    ARGUS_METRICS_PORT=9100
COPY dist/argus_watch-*.whl /wheels/
RUN set -eux; \
    pip install --no-cache-dir "$(ls /wheels/argus_watch-*.whl)[kafka,triton]"; \
    rm -rf /wheels; \
    groupadd --system --gid 10001 argus; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin argus; \
    install -d -o 10001 -g 10001 /var/lib/argus
USER 10001:10001
EXPOSE 9100
ENTRYPOINT ["argus", "run", "inference"]
