"""Captions: what an expert sees and advises, and that advice maps back exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ptychobench.captions import letters_from_advice
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS
from ptychobench.sim.faults import FAULTS
from ptychobench.sim.generate import PAIRS
from ptychobench.sim.text import _SEEN, caption_obj, caption_param

PARAMETERS = {"iterations": "3"}
LETTERS = sorted({letter for fault in FAULTS.values() for letter in fault.fixes})


@pytest.mark.parametrize("size", [1, 2, 3])
def test_every_combination_of_fix_letters_maps_back_exactly(size: int) -> None:
    for letters in itertools.combinations(LETTERS, size):
        for seed in range(6):
            advice = caption_param(letters, np.random.default_rng(seed), PARAMETERS)
            assert letters_from_advice(advice) == letters, advice


def test_pairs_and_no_change_map_back() -> None:
    for first, second in PAIRS:
        letters = tuple(sorted(set(FAULTS[first].fixes) | set(FAULTS[second].fixes)))
        advice = caption_param(letters, np.random.default_rng(0), PARAMETERS)
        assert letters_from_advice(advice) == letters
    assert letters_from_advice(caption_param([], np.random.default_rng(0), {})) == ("L",)


def test_advice_varies_with_the_seed() -> None:
    texts = {caption_param(["K"], np.random.default_rng(s), PARAMETERS) for s in range(20)}
    assert len(texts) >= 3
    assert any("from 3 to" in text for text in texts)  # uses the current parameters


def test_object_captions_are_one_line_and_name_every_artifact() -> None:
    labels = [label for label in ARTIFACT_LABELS if label != NO_ARTIFACTS]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        chosen = list(rng.choice(labels, size=2, replace=False))
        text = caption_obj(chosen, "Integrated circuit", rng)
        assert text
        assert "\n" not in text
        for label in chosen:
            assert any(phrase.lower() in text.lower() for phrase in _SEEN[label]), (label, text)
    clean = caption_obj([NO_ARTIFACTS], "Siemens star", np.random.default_rng(0))
    assert not any(p in clean for phrases in _SEEN.values() for p in phrases if len(p) > 8)
