"""Training examples of the VLM: the prompt as the engine renders it (image tokens
expanded by the processor) and the answer, labels on the answer only; right-padded
batches (to a multiple of ``PAD_TO`` tokens: on the CPU every new shape is slow the
first time) and the answer loss.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from training.vlm.checkpoint import VLMError

IGNORE: Final = -100

PAD_TO: Final = 32
"""Sequences are right-padded to a multiple of this many tokens (few distinct shapes)."""


def open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


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
