r"""AsFT (Yang et al., 2025, "Anchoring Safety During LLM Fine-Tuning Within Narrow Safety Basin"): keep the LoRA
update close to the alignment direction (docs/defence_methods.md, "AsFT"; the authors' code: PKU-YuanGroup/AsFT
``utils/AsFT_train_utils.py → train``).

.. math::

    L = L_{CE} + λ · \sum_i \big\| (I − C_i)\, B_i A_i \big\|_F^2

over every LoRA-adapted module i, with C_i = V_i V_iᵀ / ‖V_i‖_F and V_i = W_aligned,i − W_base,i
(pact_lightning/objectives/direction.py). As in the authors' code B_i A_i is the raw product, without the LoRA scale s
(so for ΔW = s·BA the penalty is λ/s² · ‖(I − C)ΔW‖²; ``include_lora_scale=true`` puts s² in), the squared norms are
summed, not averaged, and C is fixed before training. At initialisation B = 0, so the term starts at 0.

The penalty is computed without forming C or BA: with M_i B_i = B_i − C_i B_i (d_out × r),
‖M B A‖² = Σ (BᵀMᵀMB) ⊙ (AAᵀ). It reads no reference and no logits. Lightning divides the whole loss by
``accumulate_grad_batches``, this term included (the authors add it undivided; they accumulate 1 step).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView
from pact_lightning.objectives.direction import Direction, lora_modules
from pact_lightning.objectives.settings import AsftSettings
from pact_lightning.schema import check_settings


class Asft(Objective):
    """``settings``: those of :class:`AsftSettings` (the projector C, the LoRA scale)."""

    needs_base_weights = True

    def __init__(self, lam: float = 1.0, safety_tokens=None, **settings) -> None:
        super().__init__(lam=lam, safety_tokens=safety_tokens)
        s = check_settings(AsftSettings, settings, prefix="method.objective")
        self.projector, self.include_lora_scale = s.projector, s.include_lora_scale
        self._factors: list[tuple[Tensor, Tensor, Direction, float]] = []

    def bind_directions(self, policy, directions: list[Direction]) -> None:
        """The (A, B, direction, LoRA scale) of every adapted module with an alignment direction (held, not
        registered: the parameters stay the policy's)."""
        modules = lora_modules(policy)
        self._factors = []
        for d in directions:
            m = modules[d.name]
            adapter = m.active_adapters[0]
            self._factors.append((m.lora_A[adapter].weight, m.lora_B[adapter].weight, d, float(m.scaling[adapter])))

    def penalty(self) -> Tensor:
        """Σ_i ‖(I − C_i) B_i A_i‖²_F (times s_i² with ``include_lora_scale``)."""
        if not self._factors:
            raise RuntimeError("Asft.bind_directions(policy, directions) was not called: build.objective binds it")
        total = None
        # float32 even under bf16 autocast: the penalty is a sum of small squares
        with torch.autocast(self._factors[0][0].device.type, enabled=False):
            for a, b, d, scale in self._factors:
                mb = b.float() - d.apply(b, self.projector)
                af = a.float()
                term = ((mb.T @ mb) * (af @ af.T)).sum() * (scale ** 2 if self.include_lora_scale else 1.0)
                total = term if total is None else total + term
        return total

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        reg = self.penalty()
        return reg, {"asft/penalty": reg.detach()}
