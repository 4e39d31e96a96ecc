r"""PACT: match the aligned reference's confidence on the safety tokens at every response step.

Faithful to the authors' implementation (docs/method.md §3–§4). With S the safety-token set (|S| = k), v its weights
(z-scored, L2-normalised d of the selection step), w = max(v, 0), T the distillation temperature and t the 0-based
response step:

.. math::

    ℓ^θ_t = z_θ(x, y_{<t})[S],\quad ℓ^{full}_t = z_{ref}(x, y_{<t})[S],\quad ℓ^{post}_t = z_{ref}(h, y_{<t})[S]

    c_t = σ(α · (I(ℓ^θ_t) − I(ℓ^{post}_t) − b)) · exp(−max(t − N, 0) / τ_d) · boost,
    \qquad I(ℓ) = n_{top-p}(softmax(ℓ / T_g)) / k            (no gradient)

    ℓ^{mix}_t = (1 − c_t) ℓ^{full}_t + c_t ℓ^{post}_t,
    \qquad q_t = normalise(softmax(ℓ^{mix}_t / T) ⊙ w)

    L_{reg} = \frac{1}{|\mathcal{T}|} \sum_{(b,t) ∈ \mathcal{T}} T^2 \sum_{j ∈ S} q_{t,j} (\log q_{t,j} − \log softmax(ℓ^θ_t / T)_j)

    L = L_{CE} + λ · L_{reg}

where h is the chat template's assistant header alone (no BOS, no system or user turn) and 𝒯 the batch's response
positions. ``include_rest_mass`` adds one outcome for every token outside S, so the KL runs over k+1 outcomes and also
holds the total probability on S (see ``_with_rest_mass``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView
from pact_lightning.objectives.settings import PactSettings
from pact_lightning.schema import check_settings


def top_p_count(logits: Tensor, top_p: float, temperature: float = 1.0) -> Tensor:
    """``[N]`` smallest number of outcomes whose softmax mass reaches ``top_p``."""
    probs = torch.softmax(logits / temperature, -1).sort(-1, descending=True).values
    # count the outcomes strictly before the cumulative mass reaches top_p, plus the one that reaches it
    return (probs.cumsum(-1) < top_p).sum(-1) + 1


def log_probs_with_rest(subset_logits: Tensor, lse: Tensor, temperature: float) -> Tensor:
    """``[N, k+1]`` exact log-probabilities of the k safety tokens and of "any other token" at ``temperature``.

    ``lse`` is the full-vocabulary logsumexp of logits / temperature, so the k+1 outcomes sum to one exactly.
    """
    log_p = subset_logits / temperature - lse.unsqueeze(-1)
    log_mass = torch.logsumexp(log_p, -1).clamp_max(-1e-7)  # mass on S < 1 whenever another token has any mass
    log_rest = torch.log(-torch.expm1(log_mass))
    return torch.cat([log_p, log_rest.unsqueeze(-1)], -1)


class Pact(Objective):
    """The PACT objective (equation above); ``settings`` are those of :class:`PactSettings` (every gate constant
    included), each defaulting to the authors' value."""

    needs_safety_tokens = True

    def __init__(self, lam: float = 1.0, safety_tokens=None, **settings) -> None:
        super().__init__(lam=lam, safety_tokens=safety_tokens)
        s = check_settings(PactSettings, settings, prefix="method.objective")
        self.temperature = float(s.temperature)
        self.include_rest_mass = s.include_rest_mass
        self.gate = s.gate
        self.gate_top_p, self.gate_temperature = s.gate_top_p, s.gate_temperature
        self.gate_alpha, self.gate_bias, self.gate_n, self.gate_tau, self.gate_boost = (
            s.gate_alpha, s.gate_bias, s.gate_n, s.gate_tau, s.gate_boost)
        w = safety_tokens.weights.clamp_min(0) if s.weighted else torch.ones_like(safety_tokens.weights)
        self.register_buffer("token_weights", w.float(), persistent=False)
        fields = {"subset_full"}
        if s.gate:
            fields.add("subset_post")
        if s.include_rest_mass:
            fields |= {"lse_full", "lse_post"} if s.gate else {"lse_full"}
        self.regularizer_fields = frozenset(fields)

    @torch.no_grad()
    def gate_weights(self, policy_subset: Tensor, post_subset: Tensor, steps: Tensor) -> Tensor:
        """``[N]`` c_t: how far the reference target moves toward the post-only context (no gradient)."""
        k = policy_subset.shape[-1]
        index_gap = (top_p_count(policy_subset, self.gate_top_p, self.gate_temperature)
                     - top_p_count(post_subset, self.gate_top_p, self.gate_temperature)).float() / k
        decay = torch.exp(-(steps - self.gate_n).clamp_min(0).float() / self.gate_tau)
        return torch.sigmoid(self.gate_alpha * (index_gap - self.gate_bias)) * decay * self.gate_boost

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        T = self.temperature
        z_theta = policy.subset(self.safety_ids)
        z_full = reference.require("subset_full").float()
        if self.gate:
            z_post = reference.require("subset_post").float()
            c = self.gate_weights(z_theta, z_post, policy.steps).unsqueeze(-1)
        if self.include_rest_mass:
            log_p = log_probs_with_rest(z_theta, policy.lse_at(T), T)
            ref = log_probs_with_rest(z_full, reference.require("lse_full").float(), T)
            if self.gate:
                ref = (1 - c) * ref + c * log_probs_with_rest(z_post, reference.require("lse_post").float(), T)
            log_q = self._with_rest_mass(ref)
        else:
            mix = (1 - c) * z_full + c * z_post if self.gate else z_full
            log_q = torch.log_softmax(mix / T, -1) + torch.log(self.token_weights)
            log_q = log_q - torch.logsumexp(log_q, -1, keepdim=True)
            log_p = torch.log_softmax(z_theta / T, -1)
        q = log_q.exp()
        # 0·log 0 = 0 where a weight is zero; a NaN q (a NaN reference) stays NaN so the NaN check reports it
        kl = (T * T) * (q * (log_q - log_p)).where(q != 0, torch.zeros_like(q)).sum(-1)
        metrics = {"pact/gate_mean": policy.mean(c.squeeze(-1))} if self.gate else {}
        return policy.mean(kl), metrics

    def _with_rest_mass(self, ref_log_probs: Tensor) -> Tensor:
        """Target over k+1 outcomes: the reference's mass on S is kept, and tilted by w only *within* S.

        ``ref_log_probs`` are the (mixed) reference log-probabilities over [S, rest]; the result is
        q = [m_S · normalise(p_S ⊙ w), 1 − m_S] in log space.
        """
        ref = torch.log_softmax(ref_log_probs, -1)  # renormalise after mixing in log space
        log_s, log_rest = ref[:, :-1], ref[:, -1:]
        log_mass = torch.logsumexp(log_s, -1, keepdim=True)
        tilted = log_s + torch.log(self.token_weights)
        tilted = tilted - torch.logsumexp(tilted, -1, keepdim=True) + log_mass
        return torch.cat([tilted, log_rest], -1)
