"""LoRA adapters that the engine serves: the all-zero adapter (the base model, served
as an adapter to keep clear of the CPU LoRA bug; see ``ptychoagent.engine``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

PROJECTIONS: Final = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The seven projections of a Llama block (the paper's LoRA targets)."""


def make_lora(
    base: str | Path, out: str | Path, rank: int = 16, std: float = 0.0, seed: int = 0
) -> Path:
    """A peft LoRA adapter for ``base`` with every LoRA weight set to zero (``std`` 0) or
    drawn from N(0, std) (a deliberately different adapter, for tests); written once."""
    out = Path(out)
    marker = out / "ptychoagent-adapter.json"
    wanted = {"base": str(Path(base).resolve()), "rank": rank, "std": std, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return out
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=0.0,
        target_modules=list(PROJECTIONS),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_" in name:
                if std == 0:
                    weight.zero_()
                else:
                    weight.copy_(torch.randn(weight.shape, generator=generator) * std)
    peft_model.save_pretrained(str(out))
    marker.write_text(json.dumps(wanted, indent=2))
    return out


def zero_adapter(base: str | Path, models_dir: str | Path = "models") -> Path:
    """The all-zero adapter of ``base`` (the base model served as an adapter), made once
    under ``models_dir/adapters/<base>-zero``."""
    base = Path(base)
    return make_lora(base, Path(models_dir) / "adapters" / f"{base.name}-zero")
