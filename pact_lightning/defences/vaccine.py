r"""Vaccine (Huang et al., 2024, "Vaccine: Perturbation-aware Alignment for Large Language Models"): the alignment
stage trains against the worst-case perturbation of the hidden states (docs/defence_methods.md, "Vaccine"; the authors' code:
git-disl/Vaccine ``trainer.py → VaccineTrainer``). ``align/defence=vaccine``.

Each alignment batch x is used twice. Pass 1 runs the model unperturbed, records the output a_l of every decoder
layer's self-attention block (after o_proj, before the residual addition) and takes g_l = ∂L/∂a_l; its parameter
gradients are not computed. With one global norm over all layers, batch items and positions,

.. math::

    ε_l = ρ \, \frac{g_l}{\sqrt{\sum_l \|g_l\|^2} + 10^{-7}} \quad(\text{detached}), \qquad
    \text{pass 2: } a_l ← a_l + ε_l, \quad θ ← θ − η\, ∇_θ L(θ; x, ε)

i.e. min_θ max_{‖ε‖ ≤ ρ} L(θ; a + ε) with the inner maximum approximated by one normalised ascent step on the
activations. Only pass 2's gradient reaches the optimiser (Lightning clips, accumulates and all-reduces it as any
loss's). Nothing is perturbed at fine-tuning or inference time.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from pact_lightning.defences import AlignmentDefence, register
from pact_lightning.errors import ConfigError
from pact_lightning.schema import Number, setting

if TYPE_CHECKING:
    from torch import Tensor, nn


@register
@dataclass
class Vaccine(AlignmentDefence):
    name = "vaccine"
    rho: float = setting(2.0, Number(float, 0, open_low=True),
                         help="ρ: the norm of the perturbation over all layers' attention outputs (the authors' default)")

    def step(self, tokenizer, align) -> VaccineStep:
        return VaccineStep(self.rho)


def attention_blocks(policy: nn.Module) -> list[nn.Module]:
    """Every decoder layer's self-attention module, in layer order."""
    blocks = [m for name, m in policy.named_modules() if name.endswith("self_attn")]
    if not blocks:
        raise ConfigError("align/defence=vaccine perturbs the output of each layer's self-attention block, but this "
                          "model has no module named *.self_attn; use a Llama/Qwen/Gemma-style model")
    return blocks


@contextmanager
def hooked(blocks: list[nn.Module], hook: Callable) -> Iterator[None]:
    handles = [b.register_forward_hook(hook) for b in blocks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def perturbations(grads: list[Tensor], rho: float) -> list[Tensor]:
    """ε_l = ρ · g_l / (‖(g_1 … g_L)‖ + 1e-7): one norm over every layer's whole gradient."""
    import torch

    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    return [(rho * g.float() / (norm + 1e-7)).detach() for g in grads]


class VaccineStep:
    """Vaccine's two-pass step around the module's own loss (``rho`` = ρ)."""

    def __init__(self, rho: float) -> None:
        self.rho = float(rho)
        self._perturbing: list = []

    def __call__(self, module, batch: dict[str, Tensor], loss: Callable[[dict[str, Tensor]], Tensor]) -> Tensor:
        import torch

        blocks = attention_blocks(module.policy)
        outputs: dict = {}
        with hooked(blocks, lambda block, args, out: outputs.__setitem__(block, out[0])):
            ce = module.objective(module.policy_view(batch), None).ce
        acts = [outputs[b] for b in blocks]
        grads = torch.autograd.grad(ce, acts, allow_unused=True)  # activations only: no parameter gradient
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
        eps = dict(zip(blocks, perturbations(grads, self.rho)))
        module.log("align/vaccine_unperturbed_ce", ce.detach(), batch_size=batch["input_ids"].shape[0])

        def perturb(block, args, out):
            return (out[0] + eps[block].to(out[0].dtype), *out[1:])

        # kept until after backward: gradient checkpointing re-runs the layers' forward there, with ε again
        self._perturbing = [b.register_forward_hook(perturb) for b in blocks]
        return loss(batch)

    def after_backward(self) -> None:
        for handle in self._perturbing:
            handle.remove()
        self._perturbing = []
