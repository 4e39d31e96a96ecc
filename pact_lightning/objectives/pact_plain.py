r"""PACT, plain reading of the abstract: match the reference's confidence on S, no gate, no token weights.

.. math::

    L_{reg} = \frac{1}{|\mathcal{T}|} \sum_{(b,t) ∈ \mathcal{T}}
              T^2 · KL\big(softmax(z_{ref}(x, y_{<t})[S] / T) \,\|\, softmax(z_θ(x, y_{<t})[S] / T)\big),
    \qquad L = L_{CE} + λ · L_{reg}

i.e. :class:`~pact_lightning.objectives.pact.Pact` with c_t = 0 and uniform w. Kept as an ablation; it needs only the
full-context reference (no post-only pass). ``include_rest_mass`` works as in PACT.
"""

from __future__ import annotations

from pact_lightning.objectives.pact import Pact
from pact_lightning.objectives.settings import PactPlainSettings
from pact_lightning.schema import check_settings


class PactPlain(Pact):
    """``settings``: those of :class:`PactPlainSettings` (temperature, include_rest_mass)."""

    def __init__(self, lam: float = 1.0, safety_tokens=None, **settings) -> None:
        s = check_settings(PactPlainSettings, settings, prefix="method.objective")
        super().__init__(lam=lam, safety_tokens=safety_tokens, temperature=s.temperature,
                         include_rest_mass=s.include_rest_mass, gate=False, weighted=False)
