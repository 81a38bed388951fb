# syntax=docker/dockerfile:1
# Argus operator API (services/api). Build the wheel, then the image, from the repository root:
#   rm -rf dist && .venv/bin/uv build --wheel --out-dir dist
#   docker build -f deploy/docker/api.Dockerfile -t registry.example.com/argus/api:0.1.0 .
# The image installs that wheel (argus, argus_services, argus_data: models and demo assets) and nothing
# of the source tree; the build context is only dist/*.whl (this file's .dockerignore).
# Extras: [triton,mongo] — Triton gRPC (enrollment embeds photos) and pymongo (event store); FastAPI and uvicorn
# are core dependencies. No Kafka: the API reads no topic.
# Runs as UID 10001 with a read-only root filesystem; writable paths are emptyDirs (/tmp, /var/lib/argus).

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARGUS_DATA_DIR=/var/lib/argus \
    ARGUS_METRICS_PORT=9100 \
    ARGUS_API_HOST=0.0.0.0 \
    ARGUS_API_PORT=8080
COPY dist/argus_watch-*.whl /wheels/
RUN set -eux; \
    pip install --no-cache-dir "$(ls /wheels/argus_watch-*.whl)[triton,mongo]"; \
    rm -rf /wheels; \
    groupadd --system --gid 10001 argus; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin argus; \
    install -d -o 10001 -g 10001 /var/lib/argus
USER 10001:10001
EXPOSE 8080 9100
ENTRYPOINT ["argus", "run", "api"]
