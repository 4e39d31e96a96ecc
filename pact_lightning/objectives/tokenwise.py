r"""Token-wise constrained fine-tuning (Qi et al., "Safety Alignment Should Be Made More Than Just a Few Tokens Deep").

.. math::

    L_{tw} = \frac{1}{|\mathcal{T}|} \sum_{(b,t) ∈ \mathcal{T}}
             \frac{2}{β_t} \log\big(1 + e^{-β_t Δ_t}\big)
             = -\frac{1}{|\mathcal{T}|} \sum \frac{2}{β_t} \log σ(β_t Δ_t),
    \qquad Δ_t = \log π_θ(y_t \mid x, y_{<t}) − \log π_{ref}(y_t \mid x, y_{<t})

with β_t = β·first_token_factor at t = 0, β·bias_factor for 1 ≤ t < bias_length, β afterwards (defaults give
β_1 = 0.5, β_2..5 = 2, β_{t>5} = 0.1 in the paper's 1-based numbering). Its gradient is the authors' weighted CE,
2(1 − σ(β_t Δ_t)) · ∇(−log π_θ(y_t)). Written in this framework's form

.. math::  L = L_{CE} + λ · (L_{tw} − L_{CE})

so λ = 1 is Qi et al.'s objective exactly and λ = 0 is SFT; the logged regulariser is L_tw − L_CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView
from pact_lightning.objectives.settings import TokenwiseSettings
from pact_lightning.schema import check_settings


class Tokenwise(Objective):
    """``settings``: those of :class:`TokenwiseSettings` (β and its schedule)."""

    regularizer_fields = frozenset({"target_logprob"})

    def __init__(self, lam: float = 1.0, safety_tokens=None, **settings) -> None:
        super().__init__(lam=lam, safety_tokens=safety_tokens)
        s = check_settings(TokenwiseSettings, settings, prefix="method.objective")
        self.beta, self.first_token_factor = s.beta, s.first_token_factor
        self.bias_factor, self.bias_length = s.bias_factor, s.bias_length

    def betas(self, steps: Tensor) -> Tensor:
        beta = torch.full(steps.shape, self.beta, device=steps.device)
        beta = torch.where(steps < self.bias_length, beta * self.bias_factor, beta)
        return torch.where(steps == 0, torch.full_like(beta, self.beta * self.first_token_factor), beta)

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        beta = self.betas(policy.steps)
        delta = policy.target_logprob() - reference.require("target_logprob").float()
        tokenwise = policy.mean(2.0 / beta * F.softplus(-beta * delta))
        ce = policy.mean(-policy.target_logprob())
        return tokenwise - ce, {"tokenwise/loss": tokenwise.detach()}
