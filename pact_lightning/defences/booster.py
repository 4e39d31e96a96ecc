r"""Booster (Huang et al., 2024, "Booster: Tackling Harmful Fine-tuning for Large Language Models via Attenuating
Harmful Perturbation"): the alignment stage also minimises how much one harmful step would lower the harmful loss
(docs/defence_methods.md, "Booster"; the authors' code: git-disl/Booster ``trainer.py → BoosterAlignmentTrainer``).
``align/defence=booster``.

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pact_lightning.defences import AlignmentDefence, register
from pact_lightning.schema import INT_POS, NONNEG, Number, setting

if TYPE_CHECKING:
    from torch import Tensor


@register
@dataclass
class Booster(AlignmentDefence):
    name = "booster"
    lam: float = setting(5.0, NONNEG, help="λ: weight of the harmful-loss drop (the authors' scripts)")
    alpha: float = setting(0.1, NONNEG, help="α: length of the simulated normalised harmful step in LoRA-parameter space")
    # harmful prompt → harmful answer: the alignment split's own prompts (as the authors' code), never the poison or
    # evaluation prompts (checked before the stage)
    harmful: Any = setting(None, help="the source of harmful (prompt → harmful answer) pairs")
    num_samples: int = setting(250, INT_POS, help="harmful examples drawn")
    batch_size: int | None = setting(None, Number(int, 1, optional=True),
                                     help="harmful batch size; null = the alignment batch size")

    def check(self, poison, eval_prompts: list[str]) -> None:
        """Booster's harmful examples share no prompt with the attack's poison candidates or the safety evaluation:
        the defence would otherwise have seen the attack's or the benchmark's own prompts."""
        from pact_lightning.data.sources import normalize_prompt
        from pact_lightning.errors import DataError

        own = {normalize_prompt(e.prompt): e for e in self.harmful.load()}
        for name, prompts in (("the poison source data.harmful", [e.prompt for e in poison.load()]),
                              ("the safety evaluation's harmful prompts", eval_prompts)):
            shared = [own[p] for p in {normalize_prompt(p) for p in prompts} if p in own]
            if shared:
                raise DataError(f"align.defence.harmful ({self.harmful.name}) shares {len(shared)} prompt(s) with "
                                f"{name} (first: row {shared[0].row}: {shared[0].prompt[:80]!r}); give Booster a "
                                "disjoint harmful split (the embedded default uses the offline harmful align split)")

    def step(self, tokenizer, align) -> BoosterStep:
        from pact_lightning.data.datamodule import PoisonMixDataModule

        harmful = PoisonMixDataModule(benign=None, harmful=self.harmful, num_samples=self.num_samples, poison_ratio=1.0,
                                      batch_size=int(self.batch_size or align.data.batch_size),
                                      max_length=int(align.data.max_length), name="booster harmful").attach(
                                          tokenizer, seed=int(align.seed))
        harmful.setup("fit")
        return BoosterStep(harmful.cycling_batches(), lam=self.lam, alpha=self.alpha)


def harmful_direction_gap(loss_at, params: list[Tensor], alpha: float) -> tuple[list[Tensor], Tensor, Tensor]:
    """g − g' for the harmful loss ``loss_at()`` at θ and at θ' = θ − α·g/(‖g‖ + 1e-7), with the parameters restored
    exactly afterwards; also h(θ) and h(θ')."""
    import torch

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


class BoosterStep:
    """Booster's step around the module's own loss f: ``lam`` = λ, ``alpha`` = α, ``harmful`` = an endless iterator of
    harmful (prompt → harmful answer) batches."""

    def __init__(self, harmful: Iterator[dict[str, Tensor]], lam: float = 5.0, alpha: float = 0.1) -> None:
        self.harmful, self.lam, self.alpha = harmful, float(lam), float(alpha)

    def __call__(self, module, batch: dict[str, Tensor], loss: Callable[[dict[str, Tensor]], Tensor]) -> Tensor:
        params = [p for p in module.policy.parameters() if p.requires_grad]
        harmful = {k: v.to(module.device) for k, v in next(self.harmful).items()}
        gap, h, h_after = harmful_direction_gap(lambda: module.objective(module.policy_view(harmful), None).ce, params,
                                                self.alpha)
        module.log_dict({"align/booster_harmful_loss": h, "align/booster_harmful_loss_after_step": h_after},
                        batch_size=batch["input_ids"].shape[0])
        f = loss(batch)
        return f + self.lam * sum((d * p).sum() for d, p in zip(gap, params))

    def after_backward(self) -> None:
        pass
