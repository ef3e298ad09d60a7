"""The paper's two prompts, byte-exact, and builders of few-shot chat conversations.

A built conversation is a list of OpenAI-style chat messages: k example turns (user,
assistant) followed by the query's user turn. For detection every user turn carries its
own image as an ``image_url`` part with a ``data:`` URL, image first, then the prompt
text. The example turns come first and are identical across queries that share examples,
so an engine with a prefix cache serves most of each prompt from cache.

Every built conversation carries ``PROMPT_VERSION``; change it whenever a byte of what a
model sees changes, so stored predictions can be traced to the prompt that made them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ptychobench.images import MEDIA_TYPES, image_format
from ptychobench.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    OPTIONS,
    Task,
    canonical_order,
    vocabulary,
)

if TYPE_CHECKING:
    from ptychobench.data.sample import Sample

PROMPT_VERSION: Final = "ptychobench-prompts/1"

DETECTION_PROMPT: Final = (
    "You are an expert in X-ray ptychography image analysis. What artifacts are visible?\n"
    "\n"
    "Possible artifacts include: "
    + ", ".join(label for label in ARTIFACT_LABELS if label != NO_ARTIFACTS)
    + ".\n"
    "\n"
    'Format your response as: <answer>[Comma-separated list of artifacts, or "No obvious '
    'artifacts" if the image quality is good]</answer> Provide your answers now:'
)

_RECOMMENDATION_HEAD: Final = (
    "*SAMPLE INFORMATION*:\n"
    "\n"
    "Package Choice: {package}\n"
    "Instrument Used: {instrument}\n"
    "Sample Type: {sample}\n"
    "Beam Type: {beam}\n"
    "Expert Description: {caption_obj}\n"
    "Observed Artifacts: {artifacts}\n"
    "Current Reconstruction Parameters:\n"
    "{param_info}\n"
    "\n"
    "Based on this sample information, what specific parameter adjustments are needed to "
    "improve image quality?\n"
    "\n"
    "*POSSIBLE PARAMETER UPDATES*:\n"
)
_RECOMMENDATION_TAIL: Final = (
    "\n"
    "\n"
    "Your task:\n"
    "1. Select all correct options (A, B, C, ...) and list them as a comma-separated list "
    "inside <answer></answer> tags (e.g., <answer>E, J, V</answer>).\n"
    "2. The <answer></answer> tags must contain ONLY the letters. Do not include any "
    "explanations or other text."
)
_OPTION_LINES: Final = "\n".join(f"{letter}) {text}" for letter, text in OPTIONS.items())

RECOMMENDATION_TEMPLATE: Final = _RECOMMENDATION_HEAD + _OPTION_LINES + _RECOMMENDATION_TAIL
"""The recommendation user turn with ``str.format`` fields (package, instrument, sample,
beam, caption_obj, artifacts, param_info)."""

_FIELDS: Final = ("package", "instrument", "sample", "beam", "caption_obj", "artifacts")
_TEMPLATE_RE: Final = re.compile(
    "".join(
        f"(?P<{part[1:-1]}>.*?)" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{\w+\})", RECOMMENDATION_TEMPLATE)
        if part
    ),
    re.DOTALL,
)


def format_answer(labels: Iterable[str], task: Task | str) -> str:
    """The assistant target in the paper's format, labels in vocabulary order.

    Detection: ``<answer>[Halo artifacts, Line artifacts]</answer>``;
    recommendation: ``<answer>G, K</answer>``.
    """
    ordered = ", ".join(canonical_order(labels, task))
    if Task(task) is Task.DETECTION:
        return f"<answer>[{ordered}]</answer>"
    return f"<answer>{ordered}</answer>"


_REGEX_SPECIAL: Final = re.compile(r"[.^$*+?{}\[\]\\|()]")
"""Characters escaped in label alternatives (spaces and hyphens stay plain: grammar
engines read the pattern, not Python's ``re``)."""


def answer_regex(task: Task | str, max_labels: int = 5) -> str:
    """A regular expression for ``structured_outputs.regex`` that admits exactly the
    answers :func:`format_answer` writes, with 1 to ``max_labels`` labels.

    Bounded on purpose: an unbounded repetition lets a small model loop until
    ``max_tokens`` and return an unterminated answer.
    """
    if max_labels < 1:
        raise ValueError(f"max_labels must be >= 1, got {max_labels}")
    task = Task(task)
    if task is Task.DETECTION:
        alternatives = "|".join(_REGEX_SPECIAL.sub(r"\\\g<0>", x) for x in vocabulary(task))
        item = f"({alternatives})"
        return rf"<answer>\[{item}(, {item}){{0,{max_labels - 1}}}\]</answer>"
    item = "[" + "".join(vocabulary(task)) + "]"
    return rf"<answer>{item}(, {item}){{0,{max_labels - 1}}}</answer>"


def format_parameters(parameters: dict[str, Any]) -> str:
    """Render reconstruction parameters as the prompt's block: one ``name: value`` a line."""
    return "\n".join(f"{name}: {value}" for name, value in parameters.items())


_BULLETS: Final = ("- ", "• ", "* ")
_SEPARATORS: Final = (": ", " = ")


def parse_parameters(block: str) -> dict[str, str]:
    """The inverse of :func:`format_parameters`; it also reads the ways people write
    such a listing: ``name = value`` lines and bulleted lines (``-``, ``•``, ``*``).
    Lines with neither separator are skipped."""
    parsed: dict[str, str] = {}
    for line in block.splitlines():
        text = line.strip()
        for bullet in _BULLETS:
            text = text.removeprefix(bullet)
        for separator in _SEPARATORS:
            if separator in text:
                name, value = text.split(separator, 1)
                parsed[name.strip()] = value.strip()
                break
    return parsed


def recommendation_prompt(sample: Sample) -> str:
    """The recommendation user turn: the published text when the sample carries it,
    otherwise the paper's template filled from the sample's fields."""
    if sample.prompt is not None:
        return sample.prompt
    return RECOMMENDATION_TEMPLATE.format(
        package=sample.package,
        instrument=sample.instrument,
        sample=sample.sample_type,
        beam=sample.beam,
        caption_obj=sample.caption_obj,
        artifacts=", ".join(sample.artifacts) if sample.artifacts else NO_ARTIFACTS,
        param_info=sample.parameters,
    )


def parse_recommendation_prompt(text: str) -> dict[str, str]:
    """Read the fields back out of a recommendation user turn.

    Keys: package, instrument, sample, beam, caption_obj, artifacts, param_info.
    Raises ``ValueError`` when the text does not follow the paper's template.
    """
    match = _TEMPLATE_RE.fullmatch(text)
    if match is None:
        raise ValueError("text does not follow the recommendation prompt template")
    fields = match.groupdict()
    if any("\n" in fields[name] for name in _FIELDS):
        raise ValueError("a one-line field of the recommendation prompt spans several lines")
    return fields


def image_data_url(image: bytes | Path) -> str:
    """A ``data:`` URL for image bytes (PNG, JPEG, TIFF or GIF, told by magic number)."""
    data = image.read_bytes() if isinstance(image, Path) else image
    return base64_data_url(base64.b64encode(data).decode("ascii"), data)


def base64_data_url(encoded: str, head: bytes | None = None) -> str:
    """A ``data:`` URL for an image already base64-encoded (as the retriever sends
    examples): its type told from the first bytes (``head``, or decoded from the first
    characters), the text passed through as it is."""
    if head is None:
        head = base64.b64decode(encoded[:16])
    fmt = image_format(head)
    if fmt is None or fmt not in MEDIA_TYPES:
        raise ValueError("image is not PNG, JPEG, TIFF or GIF")
    return f"data:{MEDIA_TYPES[fmt]};base64,{encoded}"


@dataclass(frozen=True)
class Example:
    """One few-shot turn: the user's content (text, and the image for detection) and the
    assistant's answer."""

    id: str
    text: str
    answer: str
    image: bytes | str | None = None
    """The image as bytes, or already as a ``data:`` URL (:func:`base64_data_url`)."""


@dataclass(frozen=True)
class Conversation:
    """A request ready for an OpenAI-compatible chat endpoint, and what made it."""

    task: Task
    messages: list[dict[str, Any]]
    example_ids: tuple[str, ...]
    prompt_version: str = PROMPT_VERSION

    @property
    def k(self) -> int:
        """Number of example turns."""
        return len(self.example_ids)

    @cached_property
    def prompt_hash(self) -> str:
        """SHA-256 of the canonical JSON of the messages and the prompt version."""
        canonical = json.dumps(
            {"version": self.prompt_version, "messages": self.messages},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _user_turn(text: str, image: bytes | str | None) -> dict[str, Any]:
    if image is None:
        return {"role": "user", "content": text}
    url = image if isinstance(image, str) else image_data_url(image)
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": text},
        ],
    }


def build_conversation(
    task: Task | str,
    query_text: str,
    examples: Sequence[Example] = (),
    query_image: bytes | None = None,
) -> Conversation:
    """k example turns followed by the query turn.

    Detection requires an image on the query and on every example; recommendation takes
    none.
    """
    task = Task(task)
    needs_image = task is Task.DETECTION
    for example in examples:
        if (example.image is not None) != needs_image:
            raise ValueError(f"example {example.id!r}: {_image_rule(task)}")
    if (query_image is not None) != needs_image:
        raise ValueError(f"query: {_image_rule(task)}")
    messages: list[dict[str, Any]] = []
    for example in examples:
        messages.append(_user_turn(example.text, example.image))
        messages.append({"role": "assistant", "content": example.answer})
    messages.append(_user_turn(query_text, query_image))
    return Conversation(task, messages, tuple(example.id for example in examples))


def _image_rule(task: Task) -> str:
    if task is Task.DETECTION:
        return "detection turns need an image"
    return "recommendation turns carry no image"


def example_from_sample(
    sample: Sample, task: Task | str, image: bytes | str | None = None
) -> Example:
    """A few-shot example turn from an annotated sample; for detection the image is
    ``image`` (bytes or a ``data:`` URL) or, when that is ``None``, read from
    ``sample.image``."""
    task = Task(task)
    if task is Task.DETECTION:
        if image is None:
            if sample.image is None:
                raise ValueError(f"sample {sample.id!r} has no image")
            image = sample.image.read_bytes()
        return Example(sample.id, DETECTION_PROMPT, format_answer(sample.artifacts, task), image)
    return Example(sample.id, recommendation_prompt(sample), format_answer(sample.options, task))


def build_for_sample(
    task: Task | str, query: Sample, examples: Sequence[Sample] = ()
) -> Conversation:
    """The conversation for a query sample with example samples (images read from disk)."""
    task = Task(task)
    turns = [example_from_sample(example, task) for example in examples]
    if task is Task.DETECTION:
        if query.image is None:
            raise ValueError(f"query sample {query.id!r} has no image")
        return build_conversation(task, DETECTION_PROMPT, turns, query.image.read_bytes())
    return build_conversation(task, recommendation_prompt(query), turns)
