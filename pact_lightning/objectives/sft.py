r"""Standard supervised fine-tuning: token-mean cross-entropy on the response tokens.

.. math::

    L = L_{CE} = -\frac{1}{|\mathcal{T}|} \sum_{(b,t) ∈ \mathcal{T}} \log π_θ(y_t \mid x, y_{<t})

with 𝒯 the batch's response positions (prompt and padding masked with -100).
"""

from __future__ import annotations

import logging

from pact_lightning.objectives.base import Objective

log = logging.getLogger(__name__)


class SFT(Objective):
    has_regularizer = False

    def __init__(self, lam: float | None = None, safety_tokens=None) -> None:
        if lam:
            log.warning("method=sft has no regulariser: method.lam=%s is ignored (use method=pact for a λ)", lam)
        super().__init__(lam=0.0, safety_tokens=safety_tokens)
