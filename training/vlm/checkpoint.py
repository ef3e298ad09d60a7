"""Step 1 of the small VLM: the Idefics3 (SmolVLM) checkpoint, assembled from the
prepared SmolLM2 text model and a vision tower and connector (fresh and seeded, or the
shipped ``vision.safetensors`` of :mod:`training.vlm.pretraining`).

:func:`assemble` writes a Hugging Face checkpoint (``models/<name>``): the text model
from the prepared SmolLM2 checkpoint (``training.base_models``); the tokenizer with
SmolVLM's image tokens (their embedding rows are the mean of the existing rows, so
re-assembling gives the same weights); SmolLM2's ChatML template with ``<image>``
parts. This is what ``make run`` does with the shipped vision weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from training.checkpoints import package_version, publish_model_dir, read_manifest, sha256_file
from training.tiny_vlm import END_OF_UTTERANCE, IMAGE_TOKEN, IMAGE_TOKENS

logger = logging.getLogger(__name__)

BUILDER_VERSION: Final = "ptychoagent-smolvlm/1"

VISION_FILE: Final = "vision.safetensors"

PRETRAINING_RECORD: Final = "pretraining.json"

DEFAULT_SYSTEM: Final = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

CHAT_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] in ['image', 'image_url'] %}{{ '<image>' }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""SmolLM2's ChatML turns (with its default system turn), image parts as ``<image>``: the
text model keeps the format it was instruction-tuned on."""

VISION_PREFIXES: Final = ("model.vision_model.", "model.connector.")
"""The parameters of the vision tower and the connector (what ``vision.safetensors``
holds)."""


class VLMError(RuntimeError):
    """The model cannot be built or trained; the message says why."""


@dataclass(frozen=True)
class VisionSpec:
    """The vision tower and connector (all of it goes into the checkpoint's hash).

    128-pixel images in 8-pixel patches (256 patches, fine enough for pixel-scale
    artifacts such as grids and noise), merged 4 x 4 by the pixel shuffle: 16 text-model
    tokens per image, so a 7-shot prompt stays short.
    """

    image_size: int = 128
    patch_size: int = 8
    scale_factor: int = 4
    hidden: int = 192
    intermediate: int = 768
    layers: int = 4
    heads: int = 3
    initializer_range: float = 0.02

    @property
    def image_seq_len(self) -> int:
        patches = (self.image_size // self.patch_size) ** 2
        return patches // self.scale_factor**2


def spec_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def assemble(
    out: str | Path,
    text_dir: str | Path,
    vision: str | Path | None = None,
    spec: VisionSpec | None = None,
    seed: int = 0,
) -> Path:
    """Write the Idefics3 checkpoint into ``out`` once per configuration; return ``out``.

    ``vision`` is a ``vision.safetensors`` (vision tower and connector, from
    :func:`pretrain`), or None for a fresh, seeded tower. The spec is read from the
    record beside a vision file when there is one.
    """
    out, text_dir = Path(out), Path(text_dir)
    if not (text_dir / "config.json").is_file():
        raise VLMError(f"no text model at {text_dir}; prepare it with: ptychoagent models prepare")
    vision_path = Path(vision) if vision is not None else None
    if vision_path is not None:
        if not vision_path.is_file():
            raise VLMError(f"no vision weights at {vision_path}")
        spec = spec or read_spec(vision_path.parent)
    spec = spec or VisionSpec()
    text_manifest = read_manifest(text_dir) or {}
    wanted = {
        "builder": BUILDER_VERSION,
        "spec": asdict(spec),
        "seed": seed,
        "text_sha256": text_manifest.get("source_sha256")
        or sha256_file(text_dir / "model.safetensors"),
        "vision_sha256": sha256_file(vision_path) if vision_path else None,
    }
    config_hash = spec_hash(wanted)
    manifest = read_manifest(out)
    if manifest and manifest.get("config_hash") == config_hash:
        logger.info("%s is up to date", out)
        return out

    def write(staging: Path) -> dict[str, Any]:
        parameters = _write_checkpoint(staging, text_dir, vision_path, spec, seed)
        return {
            "name": out.name,
            "architecture": "Idefics3ForConditionalGeneration",
            "config_hash": config_hash,
            **wanted,
            "text_source": str(text_dir.resolve()),
            "vision_source": str(vision_path.resolve()) if vision_path else None,
            "parameters": parameters,
            "image_seq_len": spec.image_seq_len,
            "transformers": package_version("transformers"),
            "torch": package_version("torch"),
        }

    return publish_model_dir(out, write)


def read_spec(directory: Path) -> VisionSpec:
    """The spec recorded beside shipped vision weights (``pretraining.json``)."""
    record = directory / PRETRAINING_RECORD
    if not record.is_file():
        raise VLMError(f"{directory} has vision weights but no {PRETRAINING_RECORD}")
    return VisionSpec(**json.loads(record.read_text())["spec"])


def _write_checkpoint(
    target: Path, text_dir: Path, vision: Path | None, spec: VisionSpec, seed: int
) -> int:
    import torch
    from safetensors.torch import load_file
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    before = len(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": list(IMAGE_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    side = {"longest_edge": spec.image_size}
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            size=side, max_image_size=side, do_image_splitting=False
        ),
        tokenizer=tokenizer,
        image_seq_len=spec.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )
    text_config = AutoConfig.from_pretrained(text_dir).to_dict()
    for key in ("architectures", "dtype", "torch_dtype", "transformers_version", "_name_or_path"):
        text_config.pop(key, None)
    vocabulary = tokenizer.get_vocab()
    end_ids = [vocabulary["<|im_end|>"], vocabulary[END_OF_UTTERANCE]]
    text_config.update(vocab_size=len(tokenizer), tie_word_embeddings=False, eos_token_id=end_ids)
    config = Idefics3Config(
        text_config=text_config,
        vision_config={
            "hidden_size": spec.hidden,
            "intermediate_size": spec.intermediate,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "image_size": spec.image_size,
            "patch_size": spec.patch_size,
            "initializer_range": spec.initializer_range,
        },
        scale_factor=spec.scale_factor,
        image_token_id=vocabulary[IMAGE_TOKEN],
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config.dtype = "float32"
    torch.manual_seed(seed)
    model: Any = Idefics3ForConditionalGeneration(config).float()  # type: ignore[no-untyped-call]
    text: Any = AutoModelForCausalLM.from_pretrained(text_dir, dtype=torch.float32)
    with torch.no_grad():
        embeddings = text.get_input_embeddings().weight
        added = embeddings.mean(0, keepdim=True).expand(len(tokenizer) - before, -1)
        grown = torch.cat([embeddings, added])
        state = {
            f"model.text_model.{name.removeprefix('model.')}": tensor
            for name, tensor in text.state_dict().items()
            if name.startswith("model.")
        }
        state["model.text_model.embed_tokens.weight"] = grown
        state["lm_head.weight"] = grown.clone()
        _load_part(model, state, ("model.text_model.", "lm_head."), "the text model")
        if vision is not None:
            parts = {name: tensor.float() for name, tensor in load_file(str(vision)).items()}
            _load_part(model, parts, VISION_PREFIXES, str(vision))
    model.generation_config.update(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())


def _load_part(model: Any, state: dict[str, Any], prefixes: tuple[str, ...], what: str) -> None:
    """Load the weights of one part (every parameter under ``prefixes``), refusing a
    part that does not fit the spec."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if name.startswith(prefixes)]
    if missing or unexpected:
        raise VLMError(f"{what} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_model(checkpoint: Path, device: str = "cpu") -> tuple[Any, Any]:
    """The checkpoint's model (float32) and processor."""
    import torch
    from transformers import AutoProcessor, Idefics3ForConditionalGeneration

    model: Any = Idefics3ForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(checkpoint)  # type: ignore[no-untyped-call]
    return model.to(device), processor
