"""The text SFT examples (``training.sft``): the benchmark's own conversations (0-shot,
or with same-sample-type examples from the training side as the service sends them)
with the reference answer as the assistant's turn, rendered with the base model's chat
template exactly as vLLM renders them at serve time; labels keep the answer tokens only;
right-padded batches and the loss on the answer tokens.

When only the top layers learn (``trainable_layers``), the layers below them are the
base model's for the whole run, so what they give each example is computed once
(:func:`frozen_states`) and every step runs the top layers alone
(:func:`answer_loss` with ``states``): the same loss, a fraction of the compute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ptychobench.data import Sample
from ptychobench.labels import Task
from ptychobench.prompts import PROMPT_VERSION, build_for_sample, format_answer
from ptychobench.selection import rng_for, select_examples
from training.fit import SFTError

IGNORE = -100
"""Label value the loss skips (prompt and padding tokens)."""


@dataclass(frozen=True)
class Example:
    """An encoded example and, when the layers below ``first`` are frozen, what they
    give it (``states``: the input of decoder layer ``first``, one row per token)."""

    item: dict[str, list[int]]
    states: Any = None
    first: int = 0


@dataclass(frozen=True)
class Record:
    """One training example: its id, sample type and the chat turns (answer last), and
    how many worked examples precede the query in them."""

    id: str
    sample_type: str
    messages: list[dict[str, Any]]
    shots: int = 0


def records(
    samples: Sequence[Sample],
    task: Task,
    shots: Sequence[int] = (0,),
    pool: Sequence[Sample] = (),
    seed: int = 0,
) -> list[Record]:
    """Conversations with the reference answer as the assistant's turn.

    Each sample gets k worked examples, k drawn from ``shots`` by a generator seeded
    from (``seed``, its id): the service's SSFS choice (same sample type first) from
    ``pool``, never the sample itself, with a fresh draw per sample (the service keeps
    one set per type; training on one set per type would teach those few answers).
    """
    if task is not Task.RECOMMENDATION:
        raise SFTError("text SFT covers the recommendation task; detection needs a VLM")
    if any(k < 0 for k in shots) or not shots:
        raise SFTError(f"shots must be a non-empty list of counts >= 0, got {list(shots)}")
    if max(shots) > 0 and not pool:
        raise SFTError("examples in the prompt (shots > 0) need a pool to draw them from")
    out = []
    for sample in samples:
        k = rng_for("shots", seed, sample.id).choice(list(shots)) if len(shots) > 1 else shots[0]
        examples = select_examples(sample, pool, k, "ssfs", seed, vary_per_query=True)
        conversation = build_for_sample(task, sample, examples)
        answer = {"role": "assistant", "content": format_answer(sample.options, task)}
        messages = [*conversation.messages, answer]
        out.append(Record(sample.id, sample.sample_type, messages, len(examples)))
    return out


def data_hash(train: Sequence[Record], validation: Sequence[Record]) -> str:
    """SHA-256 of the canonical JSON of every example (and which side it is on)."""
    canonical = json.dumps(
        {
            "prompt_version": PROMPT_VERSION,
            "train": [[r.id, r.messages] for r in train],
            "validation": [[r.id, r.messages] for r in validation],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode(record: Record, tokenizer: Any, max_length: int) -> dict[str, list[int]]:
    """Token ids of the rendered conversation and labels that keep only the answer.

    The prompt part is rendered with ``add_generation_prompt`` as vLLM does for the
    query; the answer tokens are what follows it in the full rendering (the answer and
    the end-of-turn token). Prompts longer than ``max_length`` are refused, not cut: a
    cut prompt would teach the model answers to questions it never saw.
    """
    prompt = tokenizer.apply_chat_template(
        record.messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(record.messages, tokenize=False)
    if not full.startswith(prompt):
        raise SFTError("the chat template renders the answer turn differently from a prompt")
    answer = full[len(prompt) :].rstrip("\n")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + len(answer_ids) > max_length:
        raise SFTError(
            f"example {record.id}: {len(prompt_ids) + len(answer_ids)} tokens "
            f"exceed max_length {max_length}"
        )
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [IGNORE] * len(prompt_ids) + answer_ids,
    }


def collate(
    batch: Sequence[dict[str, list[int]]], pad_id: int, device: str = "cpu"
) -> dict[str, Any]:
    """Right-padded tensors: ids, attention mask and labels (padding ignored)."""
    import torch

    width = max(len(item["input_ids"]) for item in batch)
    ids, mask, labels = [], [], []
    for item in batch:
        pad = width - len(item["input_ids"])
        ids.append(item["input_ids"] + [pad_id] * pad)
        mask.append([1] * len(item["input_ids"]) + [0] * pad)
        labels.append(item["labels"] + [IGNORE] * pad)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def answer_loss(
    model: Any, examples: Sequence[Example], pad_id: int, device: str, precision: str
) -> tuple[Any, int]:
    """Summed cross-entropy over the answer tokens of ``examples``, and how many there were.

    The vocabulary projection is applied to the answer positions only: the prompt's
    logits would cost a fifth of the compute and most of the memory and are not used.
    Examples with cached ``states`` start at their layer ``first`` (all of a batch share
    it); the others at the token embeddings.
    """
    import torch

    batch = collate([e.item for e in examples], pad_id, device)
    causal_lm = model.get_base_model()
    inner = causal_lm.model
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    first = examples[0].first if examples[0].states is not None else 0
    with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
        if first:
            hidden = torch.nn.utils.rnn.pad_sequence(
                [e.states for e in examples], batch_first=True
            ).to(device)
        else:
            hidden = inner.embed_tokens(batch["input_ids"])
        hidden = run_layers(inner, hidden, batch["attention_mask"], inner.layers[first:])
        logits = causal_lm.lm_head(inner.norm(hidden)[:, :-1][keep])
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())


def run_layers(inner: Any, hidden: Any, attention_mask: Any, layers: Sequence[Any]) -> Any:
    """``hidden`` through ``layers`` of the decoder ``inner`` (a Llama-style model: its
    rotary embedding, its causal and padding mask), as the model's own forward does."""
    import torch
    from transformers.masking_utils import create_causal_mask

    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    mask = create_causal_mask(
        config=inner.config,
        inputs_embeds=hidden,
        attention_mask=attention_mask,
        past_key_values=None,
        position_ids=positions,
    )
    rotary = inner.rotary_emb(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(
            hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions
        )
    return hidden


def frozen_states(
    model: Any,
    items: Sequence[dict[str, list[int]]],
    first: int,
    batch_size: int,
    pad_id: int,
    device: str,
) -> list[Example]:
    """Each item with the input of decoder layer ``first`` (what the frozen layers below
    it give), computed once without gradients. Right padding does not change a real
    token's states: attention is causal."""
    import torch

    inner = model.get_base_model().model
    out: list[Example] = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = collate(chunk, pad_id, device)
            hidden = inner.embed_tokens(batch["input_ids"])
            hidden = run_layers(inner, hidden, batch["attention_mask"], inner.layers[:first])
            out += [
                Example(item, hidden[i, : len(item["input_ids"])].clone(), first)
                for i, item in enumerate(chunk)
            ]
    return out


def answer_tokens(item: dict[str, list[int]]) -> int:
    return sum(1 for label in item["labels"][1:] if label != IGNORE)
