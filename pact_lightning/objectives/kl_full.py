r"""Model-wide constraint: full-vocabulary KL to the reference on every response token.

.. math::

    L_{reg} = \frac{1}{|\mathcal{T}|} \sum_{(b,t) ∈ \mathcal{T}}
              \sum_{v ∈ V} π_{ref}(v \mid x, y_{<t}) \,(\log π_{ref}(v \mid x, y_{<t}) − \log π_θ(v \mid x, y_{<t})),
    \qquad L = L_{CE} + λ · L_{reg}

The baseline PACT is compared with: it constrains every token, not only the safety tokens. It needs the reference's
full logits, so it cannot use the safety-slice reference cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView


class KLFull(Objective):
    regularizer_fields = frozenset({"logits"})

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        ref_logits = reference.require("logits")[:, :-1][policy.mask].float()
        log_q = torch.log_softmax(ref_logits, -1)
        # policy log-probs from the already computed normaliser: one [N, V] tensor instead of a second log_softmax
        log_p = policy.full_logits()[:, :-1][policy.mask].float() - policy.lse.unsqueeze(-1)
        return policy.mean((log_q.exp() * (log_q - log_p)).sum(-1)), {}
