"""One record of a release split file (a chat sample) ↔ one ``Sample``.

A record is a user turn (the prompt text and, for detection, an ``image`` item whose
``image_path`` names the image file), an assistant turn ``<answer>…</answer>`` and a
``metadata`` object. Recommendation fields are read from the prompt text when it
follows the paper's template; ``metadata`` keys win where both are given.

Reading keeps in ``Sample.extra["release"]`` only what the fields cannot regenerate: an
answer text, image path, metadata key order or spelling, or turn structure that differ
from ours (a prompt that is not the template's goes to ``Sample.prompt``). Unknown
metadata keys go to ``Sample.extra`` as they are. Writing regenerates the rest and adds a
metadata key only where a reader could not otherwise recover a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

# Modules, not names: ``prompts`` imports ``ptychobench.data`` (for ``Sample``), so these
# names may not exist yet while this module is imported; they are looked up at call time.
from ptychobench import parsing, prompts
from ptychobench.data._fields import (
    RESERVED_EXTRA,
    Field,
    FieldValueError,
    decode_labels,
    image_name,
    read_flat,
    write_flat,
)
from ptychobench.data.errors import DataFormatError
from ptychobench.data.sample import Sample
from ptychobench.labels import Task

LAYOUT_KEY: Final = "release"
"""``Sample.extra`` key of what a byte-exact write-back needs beyond the sample's fields."""

_DEFAULT_CONTENT: Final = {Task.DETECTION: ["text", "image"], Task.RECOMMENDATION: ["text"]}
_RECORD_KEYS: Final = ["messages", "metadata"]
_COMMON: Final = (
    Field("id", ("id", "sample_id"), "id"),
    Field("sample_type", ("sample_type", "sample", "sample_text")),
    Field("instrument", ("instrument", "instrument_choice")),
    Field("beam", ("beam", "beam_choice", "beam_type")),
    Field("package", ("package", "package_choice")),
    Field("caption_obj", ("caption_obj",)),
    Field("caption_param", ("caption_param",)),
    Field("parameters", ("parameters", "param_info"), always=False),
)
_TASK_FIELDS: Final = {
    Task.DETECTION: (*_COMMON, Field("options", ("options",), "options", always=False)),
    Task.RECOMMENDATION: (
        *_COMMON,
        Field("artifacts", ("artifacts", "artifact_choice"), "artifacts", always=False),
    ),
}
_IMAGE_FIELD: Final = Field("image", ("image_path", "image"), "image", always=False)
_SEMANTIC: Final = (
    "id",
    "sample_type",
    "instrument",
    "beam",
    "package",
    "artifacts",
    "caption_obj",
    "caption_param",
    "options",
    "parameters",
)


def _fields(task: Task, image_item: bool) -> tuple[Field, ...]:
    """Metadata fields; the image is a metadata key only when the turn has no image item."""
    return _TASK_FIELDS[task] if image_item else (*_TASK_FIELDS[task], _IMAGE_FIELD)


@dataclass(frozen=True)
class Where:
    """Where in which file a record is, to name it in errors."""

    path: str
    record: int
    record_id: str | None = None

    def error(self, field: str | None, reason: str) -> DataFormatError:
        return DataFormatError(
            self.path, reason, record=self.record, record_id=self.record_id, field=field
        )


@dataclass(frozen=True)
class _Turns:
    """A split-file record taken apart; ``layout`` holds its structure beyond the fields."""

    text: str
    text_field: str
    image_path: str | None
    image_field: str | None
    answer: str
    answer_field: str
    metadata: dict[str, Any]
    layout: dict[str, Any]


def kind_of(value: Any) -> str:
    """A JSON value's kind, for error messages ("an object", "a list", …)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")


def peek_id(raw: Any) -> str | None:
    """The metadata id of a raw record, if it has one, to name the record in errors."""
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    value = metadata.get("id") if isinstance(metadata, dict) else None
    return str(value) if isinstance(value, str | int) else None


def _take_apart(raw: Any, task: Task, where: Where) -> _Turns:
    if not isinstance(raw, dict):
        raise where.error(None, f"expected an object, got {kind_of(raw)}")
    layout: dict[str, Any] = {}
    if list(raw) != _RECORD_KEYS:
        layout["record_keys"] = list(raw)
    others = {key: value for key, value in raw.items() if key not in _RECORD_KEYS}
    if others:
        layout["record"] = others
    if "messages" not in raw:
        raise where.error("messages", "missing")
    messages = raw["messages"]
    if not isinstance(messages, list):
        raise where.error("messages", f"expected a list, got {kind_of(messages)}")
    if len(messages) != 2:
        raise where.error("messages", f"expected a user and an assistant turn, got {len(messages)}")
    for i, role in enumerate(("user", "assistant")):
        if not isinstance(messages[i], dict) or messages[i].get("role") != role:
            raise where.error(f"messages[{i}].role", f"expected the {role} turn")
    text, text_field, image_path, image_field = _user_content(messages[0], task, layout, where)
    answer, answer_field = _assistant_content(messages[1], layout, where)
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        raise where.error("metadata", f"expected an object, got {kind_of(metadata)}")
    return _Turns(text, text_field, image_path, image_field, answer, answer_field, metadata, layout)


def _user_content(
    message: dict[str, Any], task: Task, layout: dict[str, Any], where: Where
) -> tuple[str, str, str | None, str | None]:
    content = message.get("content")
    if isinstance(content, str) and task is Task.RECOMMENDATION:
        layout["user_content"] = "string"
        return content, "messages[0].content", None, None
    if not isinstance(content, list):
        raise where.error("messages[0].content", f"expected a list, got {kind_of(content)}")
    texts: list[tuple[str, str]] = []
    images: list[tuple[str, str]] = []
    for j, item in enumerate(content):
        at = f"messages[0].content[{j}]"
        kind = item.get("type") if isinstance(item, dict) else None
        key = {"text": "text", "image": "image_path"}.get(kind) if isinstance(kind, str) else None
        if key is None:
            raise where.error(f"{at}.type", "expected a 'text' or an 'image' item")
        if not isinstance(item.get(key), str):
            raise where.error(f"{at}.{key}", f"expected a string, got {kind_of(item.get(key))}")
        (texts if kind == "text" else images).append((item[key], f"{at}.{key}"))
    if len(texts) != 1:
        raise where.error("messages[0].content", f"expected one text item, got {len(texts)}")
    if len(images) > 1 or (task is Task.DETECTION and not images):
        raise where.error("messages[0].content", f"expected one image item, got {len(images)}")
    order = [item["type"] for item in content]
    if order != _DEFAULT_CONTENT[task]:
        layout["user_content"] = order
    image_path, image_field = images[0] if images else (None, None)
    return texts[0][0], texts[0][1], image_path, image_field


def _assistant_content(
    message: dict[str, Any], layout: dict[str, Any], where: Where
) -> tuple[str, str]:
    content = message.get("content")
    if isinstance(content, str):
        layout["assistant_content"] = "string"
        return content, "messages[1].content"
    if not isinstance(content, list):
        raise where.error("messages[1].content", f"expected a list, got {kind_of(content)}")
    if len(content) != 1 or not isinstance(content[0], dict) or content[0].get("type") != "text":
        raise where.error("messages[1].content", "expected one text item")
    if not isinstance(content[0].get("text"), str):
        raise where.error("messages[1].content[0].text", "expected a string")
    return content[0]["text"], "messages[1].content[0].text"


_DEFAULTS: Final = {name: Sample.model_fields[name].default for name in (*_SEMANTIC[1:], "image")}


def _implied(
    task: Task, split: str, index: int, text: str, image_path: str | None
) -> tuple[dict[str, Any], str | None]:
    """What a reader recovers without metadata, and why the prompt's artifacts could not
    be read (``None`` when they could)."""
    values: dict[str, Any] = {**_DEFAULTS, "id": f"{split}-{index}"}
    values["image"] = image_name(image_path) if image_path is not None else None
    if task is Task.DETECTION:
        return values, None
    try:
        fields = prompts.parse_recommendation_prompt(text)
    except ValueError:
        return values, None
    values.update(
        package=fields["package"],
        instrument=fields["instrument"],
        sample_type=fields["sample"],
        beam=fields["beam"],
        caption_obj=fields["caption_obj"],
        parameters=fields["param_info"],
    )
    try:
        values["artifacts"] = decode_labels(fields["artifacts"], Task.DETECTION)
    except ValueError as exc:
        return values, f"Observed Artifacts: {exc}"
    return values, None


def image_field(raw: Any, task: Task, where: Where) -> str:
    """Where a record names its image, to point at it when the file is missing."""
    turns = _take_apart(raw, task, where)
    if turns.image_field is not None:
        return turns.image_field
    key = next((key for key in _IMAGE_FIELD.keys if key in turns.metadata), "image_path")
    return f"metadata.{key}"


def decode_record(raw: Any, task: Task, split: str, index: int, where: Where) -> Sample:
    """A sample from one split-file record; its image is a bare file name."""
    turns = _take_apart(raw, task, where)
    result = parsing.parse_answer(turns.answer, task, mode="robust")
    if not result.found_answer:
        raise where.error(turns.answer_field, "no <answer>…</answer> block")
    if result.unmapped:
        what = "artifact label(s)" if task is Task.DETECTION else "option letter(s)"
        raise where.error(turns.answer_field, f"unknown {what} {list(result.unmapped)}")
    implied, problem = _implied(task, split, index, turns.text, turns.image_path)
    fields = _fields(task, turns.image_path is not None)
    try:
        flat = read_flat(turns.metadata, fields)
    except FieldValueError as exc:
        raise where.error(f"metadata.{exc.key}", exc.reason) from None
    if problem is not None and "artifacts" not in flat.values:
        raise where.error(turns.text_field, problem)
    values = {**implied, **flat.values, task_labels(task): result.labels}
    extra = {key: value for key, value in flat.unknown.items() if key not in RESERVED_EXTRA}
    sample = Sample(
        **{name: values[name] for name in _SEMANTIC},
        image=Path(values["image"]) if values["image"] is not None else None,
        split=split,
        extra=extra,
    )
    generated = (
        prompts.DETECTION_PROMPT
        if task is Task.DETECTION
        else prompts.recommendation_prompt(sample)
    )
    layout = dict(turns.layout)
    shadowed = {key: value for key, value in flat.unknown.items() if key in RESERVED_EXTRA}
    if shadowed:
        layout["shadowed"] = shadowed
    if turns.image_path is not None and turns.image_path != f"images/{values['image']}":
        layout["image_path"] = turns.image_path
    if turns.answer != prompts.format_answer(result.labels, task):
        layout["answer_text"] = turns.answer
    unknown = {**extra, **shadowed}
    default_keys = list(write_flat(_values(sample), implied, fields, unknown))
    if flat.keys != default_keys:
        layout["metadata_keys"] = flat.keys
    if flat.raw:
        layout["metadata_raw"] = flat.raw
    update: dict[str, Any] = {}
    if turns.text != generated:
        update["prompt"] = turns.text
    if layout:
        update["extra"] = {**extra, LAYOUT_KEY: layout}
    return sample.model_copy(update=update) if update else sample


def task_labels(task: Task) -> str:
    """The ``Sample`` attribute that holds a task's ground truth."""
    return "artifacts" if task is Task.DETECTION else "options"


def _values(sample: Sample) -> dict[str, Any]:
    values = {name: getattr(sample, name) for name in _SEMANTIC}
    values["image"] = sample.image.name if sample.image is not None else None
    return values


def encode_record(sample: Sample, task: Task, split: str, index: int) -> dict[str, Any]:
    """The split-file record of a sample (no check that it reads back)."""
    layout = sample.extra.get(LAYOUT_KEY) or {}
    if not isinstance(layout, dict):
        raise ValueError(f"sample {sample.id!r}: extra[{LAYOUT_KEY!r}] must be an object")
    order = layout.get("user_content", _DEFAULT_CONTENT[task])
    if sample.image is None:
        if task is Task.DETECTION:
            raise ValueError(f"detection sample {sample.id!r} has no image")
        order = [kind for kind in order if kind != "image"] if isinstance(order, list) else order
    image_item = isinstance(order, list) and "image" in order
    image_path = None
    if image_item and sample.image is not None:
        kept = layout.get("image_path")
        same = isinstance(kept, str) and image_name(kept) == sample.image.name
        image_path = kept if same else f"images/{sample.image.name}"
    if sample.prompt is not None:
        text = sample.prompt
    else:
        text = (
            prompts.DETECTION_PROMPT
            if task is Task.DETECTION
            else prompts.recommendation_prompt(sample)
        )
    labels = sample.labels(task)
    answer = prompts.format_answer(labels, task)
    kept_answer = layout.get("answer_text")
    if isinstance(kept_answer, str):
        kept = parsing.parse_answer(kept_answer, task, mode="robust")
        if kept.ok and kept.labels == labels:
            answer = kept_answer
    unknown = {k: v for k, v in sample.extra.items() if k not in RESERVED_EXTRA}
    unknown.update(layout.get("shadowed", {}))
    implied, _ = _implied(task, split, index, text, image_path)
    metadata = write_flat(
        _values(sample),
        implied,
        _fields(task, image_item),
        unknown,
        layout.get("metadata_keys"),
        layout.get("metadata_raw"),
    )
    user: Any = text
    if order != "string":
        items = {"text": {"type": "text", "text": text}, "image": None}
        if image_path is not None:
            items["image"] = {"type": "image", "image_path": image_path}
        user = [items[kind] for kind in order if items.get(kind) is not None]
    assistant: Any = answer
    if layout.get("assistant_content") != "string":
        assistant = [{"type": "text", "text": answer}]
    parts = {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        "metadata": metadata,
        **layout.get("record", {}),
    }
    keys = list(layout.get("record_keys", _RECORD_KEYS))
    if "metadata" not in keys and metadata:
        keys.append("metadata")
    return {key: parts[key] for key in keys if key in parts}


def encode_sample(sample: Sample, task: Task | str, split: str, index: int) -> dict[str, Any]:
    """The split-file record of a sample at ``index`` of ``split``; ``ValueError`` when
    the release layout cannot represent it (reading the record back would change it)."""
    task = Task(task)
    record = encode_record(sample, task, split, index)
    try:
        back = decode_record(record, task, split, index, Where("<record>", index, sample.id))
    except DataFormatError as exc:
        raise ValueError(f"{task.value} sample {sample.id!r}: {exc.reason}") from None
    changed = [name for name in _SEMANTIC if getattr(back, name) != getattr(sample, name)]
    back_image = back.image.name if back.image is not None else None
    if back_image != (sample.image.name if sample.image is not None else None):
        changed.append("image")
    if changed:
        raise ValueError(
            f"{task.value} sample {sample.id!r}: the release layout cannot represent {changed}"
        )
    return record
