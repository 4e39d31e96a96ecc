"""An example defence from outside the package (docs/extending.md): a post-hoc edit that scales the trained LoRA
update by ``factor``, ΔW ← factor · ΔW (B ← factor · B). It registers itself on import; a config selects it by
``_target_`` (posthoc/half_lora.yaml beside this file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pact_lightning.defences import PosthocDefence, register
from pact_lightning.schema import Number, setting


@register
@dataclass
class HalfLoRA(PosthocDefence):
    name = "half_lora"
    needs_directions = False  # it reads nothing but the adapter
    factor: float = setting(0.5, Number(float, 0, 1), help="the scale of the LoRA update after the edit")

    def edit(self, model, directions) -> dict[str, Any]:
        import torch

        scaled = []
        with torch.no_grad():
            for name, module in model.named_modules():
                if hasattr(module, "lora_B") and module.active_adapters[0] in module.lora_B:
                    module.lora_B[module.active_adapters[0]].weight.mul_(self.factor)
                    scaled.append(name)
        return {"factor": self.factor, "num_scaled": len(scaled)}
