# syntax=docker/dockerfile:1
# The REST API (and the one-shot migrations): CPU only; torch is needed to validate
# specs (the model's config, the pruning budget), never to run a job.
#   docker build -f docker/api.Dockerfile -t ppruning-api .

FROM python:3.12-slim AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
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
# The service and the exporter (the API refuses jobs asking for an export when it lacks it),
# at the versions tested together.
RUN pip install -c constraints.txt -e ".[service,export]"

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 ppruning \
    && mkdir -p /data /artifacts /cache/huggingface \
    && chown ppruning:ppruning /data /artifacts /cache/huggingface
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    PPRUNING_DATA_DIR=/data \
    PPRUNING_ARTIFACT_ROOT=file:///artifacts
USER 10001:10001
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["ppruning", "serve", "--host", "0.0.0.0", "--port", "8000"]
