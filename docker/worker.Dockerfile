# syntax=docker/dockerfile:1
# The GPU worker: CUDA base image, the CUDA build of torch, one job per GPU.
#   docker build -f docker/worker.Dockerfile -t ppruning-worker .
# Run it through docker-compose.yml (GPU reservation, volumes, broker and database URLs).

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu's own python3 of the pinned base image; apt version pins would break when the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, pinned, from the CUDA index: the project's own range then admits it as installed.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
# Installed editable from /app: jobs/store/migrate.py finds migrations/ beside the packages.
WORKDIR /app
COPY pyproject.toml constraints.txt README.md LICENSE alembic.ini ./
COPY ppruning ./ppruning
COPY jobs ./jobs
COPY api ./api
COPY worker ./worker
COPY ppruning_client ./ppruning_client
COPY migrations ./migrations
# The service and the exporter (a job may ask for an ONNX export), at the versions tested together.
RUN pip install -c constraints.txt -e ".[service,export,mlflow]"

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ppruning \
    && mkdir -p /data /artifacts /cache/huggingface \
    && chown ppruning:ppruning /data /artifacts /cache/huggingface
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    PPRUNING_DATA_DIR=/data \
    PPRUNING_ARTIFACT_ROOT=file:///artifacts \
    PPRUNING_DEVICE=auto
USER 10001:10001
WORKDIR /data
# tini reaps the prefork children and forwards SIGTERM: Celery's warm shutdown hands unfinished jobs back.
ENTRYPOINT ["/usr/bin/tini", "--"]
# Concurrency defaults to the number of visible GPUs; each pool process is pinned to one of them.
CMD ["ppruning", "worker", "--queues", "gpu,cpu,callbacks", "--hostname", "worker@%h"]
