"""LoRA adapters that the engine serves: the all-zero adapter (the base model, served
as an adapter to keep clear of the CPU LoRA bug; see ``ptychoagent.engine``).

For a vision-language base (a config with a ``vision_config``) the adapter covers the
projections of the text model only: the vision tower and the connector stay as they are
(vLLM applies LoRA to the language model of a multimodal model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel

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
    from peft import get_peft_model

    model = _load(base)
    config = lora_config(rank, rank, 0.0, PROJECTIONS, outside_text_model(model))
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


def lora_config(
    rank: int, alpha: int, dropout: float, targets: Sequence[str], exclude: str | None = None
) -> LoraConfig:
    """The peft configuration of every LoRA adapter made here (no bias, causal LM);
    ``exclude`` a pattern of modules left out (``outside_text_model`` for a VLM)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=list(targets),
        exclude_modules=exclude,
        task_type="CAUSAL_LM",
    )


def _load(base: str | Path) -> PreTrainedModel:
    """The base model in float32: a causal LM, or an image-text-to-text model (a VLM)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    if getattr(AutoConfig.from_pretrained(base), "vision_config", None) is None:
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)


def outside_text_model(model: Any) -> str | None:
    """For a VLM, a peft ``exclude_modules`` pattern for every module outside its text
    model (the vision tower has ``q_proj``/``k_proj``/``v_proj`` too); None otherwise."""
    if getattr(model.config, "vision_config", None) is None:
        return None
    decoder = model.get_decoder()
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    return rf"(?!{re.escape(prefix)}\.).*"


def zero_adapter(base: str | Path, models_dir: str | Path = "models") -> Path:
    """The all-zero adapter of ``base`` (the base model served as an adapter), made once
    under ``models_dir/adapters/<base>-zero``."""
    base = Path(base)
    return make_lora(base, Path(models_dir) / "adapters" / f"{base.name}-zero")
