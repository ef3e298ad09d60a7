#!/bin/sh
# Start vLLM's OpenAI-compatible server (the entrypoint of the engines in
# docker-compose.yml): the arguments are vLLM's, as ptychoagent/engine.py builds them from
# deploy/vllm/<config>.yaml. From the environment:
#   SERVE_LORA_MODULES      adapters served from the start, "name=/path name=/path" (may be
#                           empty: more are loaded at run time with `ptychoagent adapters
#                           load`, which VLLM_ALLOW_RUNTIME_LORA_UPDATING allows)
#   SERVE_EXTRA_ARGS        more vLLM flags, split on spaces
#   SERVE_REQUIRE_HF_TOKEN  1 for a gated model (Llama): refuse to start without HF_TOKEN
#                           unless HF_HUB_OFFLINE=1 (the weights are in the cache already)
set -eu

if [ "${SERVE_REQUIRE_HF_TOKEN:-0}" = 1 ] && [ -z "${HF_TOKEN:-}" ] \
    && [ "${HF_HUB_OFFLINE:-0}" != 1 ]; then
    echo "error: this model is gated on Hugging Face: set HF_TOKEN (a token whose account" \
        "accepted the model's licence) in .env, or HF_HUB_OFFLINE=1 when the weights are" \
        "already in the hf-cache volume" >&2
    exit 2
fi

if [ -n "${SERVE_LORA_MODULES:-}" ]; then
    # shellcheck disable=SC2086  # one argument per adapter
    set -- "$@" --lora-modules ${SERVE_LORA_MODULES}
fi
# shellcheck disable=SC2086  # one argument per word
exec python3 -m vllm.entrypoints.openai.api_server "$@" ${SERVE_EXTRA_ARGS:-}
