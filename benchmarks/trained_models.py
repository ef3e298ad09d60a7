"""Micro-F1 of trained models, without a server, beside the baselines on the same items.

For each dataset's test split: the agent adapter's letters (Hugging Face greedy
generation on the trained weights, the paper's 0-shot prompt built as the service builds
it, answers not constrained) and the feature classifier's labels, each with its 95 %
bootstrap interval, beside the best constant answer chosen on those items and the
recommendation rule of ``ptychobench.baselines``. The numbers of docs/engine.md and
docs/classifier.md for models trained on the corpus come from here; the served numbers
come from ``benchmarks/engine.py`` and ``ptychoagent run``.

Usage::

    .venv/bin/python benchmarks/trained_models.py \\
        [--agent artifacts/adapters/smollm2-135m-agent] \\
        [--classifier artifacts/classifiers/physics-v1] \\
        [--data data/shifted --data data/ptychobench-sim]

Give ``--agent base`` for the base model. Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptychobench.baselines import best_constant, recommendation_rule  # noqa: E402
from ptychobench.bootstrap import BootstrapResult, bootstrap, paired_bootstrap  # noqa: E402
from ptychobench.data import Sample, open_dataset  # noqa: E402
from ptychobench.labels import Task, vocabulary  # noqa: E402
from ptychobench.parsing import parse_answer  # noqa: E402

BASE = ROOT / "models" / "SmolLM2-135M-Instruct"
RESAMPLES = 2000


def _shown(result: BootstrapResult) -> str:
    return f"{result.point:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}]"


def _row(name: str, truths: list[list[str]], answers: list[list[str]], task: Task) -> str:
    result = bootstrap(truths, answers, vocab=vocabulary(task), n_resamples=RESAMPLES)
    return f"  {name:<26} {_shown(result)}"


def _per_label(truths: list[list[str]], answers: list[list[str]], task: Task) -> str:
    from ptychobench.metrics import score

    scores = score(truths, answers, vocabulary(task))
    cells = [
        f"{label} {prf.f1:.2f} ({sum(label in t for t in truths)})"
        for label, prf in scores.per_class.items()
        if any(label in t for t in truths) or any(label in a for a in answers)
    ]
    return "  per label F1 (test support): " + ", ".join(cells)


def _constant(truths: list[list[str]], task: Task) -> str:
    constant = best_constant(truths, vocabulary(task))
    answers = [list(constant.labels)] * len(truths)
    return _row(f"best constant {', '.join(constant.labels)}", truths, answers, task)


def agent_letters(
    adapter: str, samples: Sequence[Sample], pool: Sequence[Sample] = (), k: int = 0
) -> list[list[str]]:
    """Greedy letters of the base model with ``adapter`` (or ``base``) for each sample,
    with ``k`` same-sample-type examples from ``pool`` (SSFS, seed 0) in the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ptychobench.prompts import build_for_sample
    from ptychobench.selection import select_examples

    tokenizer = AutoTokenizer.from_pretrained(BASE)
    model: Any = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    if adapter != "base":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    out = []
    with torch.no_grad():
        for sample in samples:
            examples = select_examples(sample, pool, k, "ssfs", seed=0)
            conversation = build_for_sample(Task.RECOMMENDATION, sample, examples)
            text = tokenizer.apply_chat_template(
                conversation.messages, tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            prompt = torch.tensor([ids])
            generated = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=24,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or 0,
            )
            answer = str(
                tokenizer.decode(generated[0, prompt.shape[1] :], skip_special_tokens=True)
            )
            out.append(list(parse_answer(answer, Task.RECOMMENDATION).labels))
    return out


def examples_letters(samples: Sequence[Sample], pool: Sequence[Sample], k: int) -> list[list[str]]:
    """The letters most of the k examples the agent is shown share (their single most
    common letter where none is in most): what copying the examples would answer."""
    from ptychobench.selection import select_examples

    out = []
    for sample in samples:
        examples = select_examples(sample, pool, k, "ssfs", seed=0)
        counts = Counter(letter for example in examples for letter in example.options)
        common = [letter for letter, n in counts.items() if 2 * n > len(examples)]
        out.append(sorted(common) or [counts.most_common(1)[0][0]])
    return out


def classifier_labels(directory: str, samples: Sequence[Sample]) -> list[list[str]]:
    from ptychobench.classifier import FeatureClassifier
    from training.classifier import load_split, model_features

    model = FeatureClassifier.load(directory)
    split = load_split(samples, model.projection is not None)
    return [list(p) for p in model.predict_features(model_features(split, model.projection))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", default=str(ROOT / "artifacts/adapters/smollm2-135m-agent"))
    parser.add_argument("--classifier", default=str(ROOT / "artifacts/classifiers/physics-v1"))
    parser.add_argument("--data", action="append", type=Path)
    parser.add_argument("--skip", choices=["agent", "classifier"], action="append", default=[])
    parser.add_argument(
        "--k",
        type=int,
        action="append",
        default=[],
        help="Also score the agent with K same-sample-type examples from the dataset's "
        "training split in the prompt (SSFS), paired against k = 0 (repeat for a curve).",
    )
    parser.add_argument(
        "--answers",
        type=Path,
        help="Write every item's truth and answers (per model and k) to this JSON file.",
    )
    args = parser.parse_args(argv)
    kept: dict[str, Any] = {}
    for data in args.data or [ROOT / "data/shifted", ROOT / "data/ptychobench-sim"]:
        dataset = open_dataset(data)
        if "classifier" not in args.skip:
            samples = list(dataset.samples(Task.DETECTION, "test"))
            truths = [list(s.artifacts) for s in samples]
            answers = classifier_labels(args.classifier, samples)
            print(f"{data} detection, {len(samples)} test items")
            print(_row(f"classifier {Path(args.classifier).name}", truths, answers, Task.DETECTION))
            print(_per_label(truths, answers, Task.DETECTION))
            print(_constant(truths, Task.DETECTION))
        if "agent" not in args.skip:
            samples = list(dataset.samples(Task.RECOMMENDATION, "test"))
            truths = [list(s.options) for s in samples]
            answers = agent_letters(args.agent, samples)
            rule = [recommendation_rule(s.artifacts, s.parameters) for s in samples]
            print(f"{data} recommendation, {len(samples)} test items")
            print(_row(f"agent {Path(args.agent).name}", truths, answers, Task.RECOMMENDATION))
            print(_per_label(truths, answers, Task.RECOMMENDATION))
            by_k = {0: answers}
            pool = list(dataset.samples(Task.RECOMMENDATION, "train")) if args.k else []
            for k in args.k:
                shots = by_k[k] = agent_letters(args.agent, samples, pool, k)
                print(_row(f"agent, k = {k} (SSFS)", truths, shots, Task.RECOMMENDATION))
                copied = examples_letters(samples, pool, k)
                print(_row("  the examples' letters", truths, copied, Task.RECOMMENDATION))
                paired = paired_bootstrap(
                    truths,
                    shots,
                    answers,
                    vocab=vocabulary(Task.RECOMMENDATION),
                    n_resamples=RESAMPLES,
                )
                print(
                    f"  k = {k} - k = 0: {paired.point_diff:+.3f} "
                    f"[{paired.ci_low:+.3f}, {paired.ci_high:+.3f}], p = {paired.p_value:.3f}"
                )
            kept[f"{data} recommendation"] = {
                "ids": [s.id for s in samples],
                "truth": truths,
                "agent": args.agent,
                "answers_by_k": by_k,
            }
            print(_constant(truths, Task.RECOMMENDATION))
            print(_row("rule", truths, rule, Task.RECOMMENDATION))
            common = Counter(", ".join(a) for a in answers).most_common(5)
            print(f"  most common answers: {common}")
    if args.answers:
        args.answers.write_text(json.dumps(kept, indent=1) + "\n")


if __name__ == "__main__":
    main()
