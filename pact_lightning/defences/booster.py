r"""Booster (Huang et al., 2024, "Booster: Tackling Harmful Fine-tuning for Large Language Models via Attenuating
Harmful Perturbation"): the alignment stage also minimises how much one harmful step would lower the harmful loss
(docs/defence_methods.md, "Booster"; the authors' code: git-disl/Booster ``trainer.py → BoosterAlignmentTrainer``).
``align.defense=booster``.

With f the alignment loss (harmful prompt → refusal, benign → helpful) and h the loss on harmful prompt → harmful
answer pairs (the alignment split's own prompts, never the poison's or the evaluation's), each step takes an alignment
batch x_a and a harmful batch x_h and follows

.. math::

    g = ∇h(θ; x_h), \qquad θ' = θ − α\, \frac{g}{\|g\| + 10^{-7}} \;\;(\text{one global norm over all LoRA tensors}),

    G = ∇f(θ; x_a) + λ\,\big(g − ∇h(θ'; x_h)\big)

the gradient of f(θ) + λ·[h(θ) − h(θ − α·sg(g/‖g‖))]: no Hessian term. It is computed as the gradient of the surrogate
f(θ) + λ Σ_p ⟨sg(g_p − g'_p), θ_p⟩, so Lightning's clipping, accumulation and all-reduce apply to G unchanged. θ' is
evaluated by writing θ' into the parameters and copying θ back bit for bit. Under DDP g and g' come from each rank's
own harmful batch; only the final gradient is all-reduced. The logged train/loss is f; h(θ) and h(θ') are logged too.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from pact_lightning.errors import ConfigError
from pact_lightning.models.module import PactModule


def harmful_direction_gap(loss_at, params: list[Tensor], alpha: float) -> tuple[list[Tensor], Tensor, Tensor]:
    """g − g' for the harmful loss ``loss_at()`` at θ and at θ' = θ − α·g/(‖g‖ + 1e-7), with the parameters restored
    exactly afterwards; also h(θ) and h(θ')."""
    h = loss_at()
    g = torch.autograd.grad(h, params)
    norm = torch.sqrt(sum((gi.float() ** 2).sum() for gi in g)) + 1e-7
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, gi in zip(params, g):
                p.sub_((alpha * gi.float() / norm).to(p.dtype))
        h_after = loss_at()
        g_after = torch.autograd.grad(h_after, params)
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    return [(a - b).detach() for a, b in zip(g, g_after)], h.detach(), h_after.detach()


class BoosterModule(PactModule):
    """The alignment stage's module with Booster's step: ``lam`` = λ, ``alpha`` = α, ``harmful`` = an endless iterator
    of harmful (prompt → harmful answer) batches."""

    def __init__(self, *args, harmful: Iterator[dict[str, Tensor]], lam: float = 5.0, alpha: float = 0.1,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for key, value in (("lam", lam), ("alpha", alpha)):
            if not value >= 0:
                raise ConfigError(f"align.booster.{key}={value} must be >= 0")
        self.harmful, self.lam, self.alpha = harmful, float(lam), float(alpha)

    def harmful_loss(self, batch: dict[str, Tensor]) -> Tensor:
        return self.objective(self.policy_view(batch), None).ce

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        params = [p for p in self.policy.parameters() if p.requires_grad]
        harmful = {k: v.to(self.device) for k, v in next(self.harmful).items()}
        gap, h, h_after = harmful_direction_gap(lambda: self.harmful_loss(harmful), params, self.alpha)
        bs = batch["input_ids"].shape[0]
        self.log_dict({"align/booster_harmful_loss": h, "align/booster_harmful_loss_after_step": h_after},
                      batch_size=bs)
        f = super().training_step(batch, batch_idx)
        return f + self.lam * sum((d * p).sum() for d, p in zip(gap, params))
