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


def kl_terms(log_q: Tensor, log_p: Tensor) -> Tensor:
    """``[N]`` Σ_j q_j (log q_j − log p_j); 0·log 0 = 0 where a weight is zero, while a NaN q (a NaN reference) stays
    NaN so the NaN check reports it."""
    q = log_q.exp()
    return (q * (log_q - log_p)).where(q != 0, torch.zeros_like(q)).sum(-1)


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
        self.uniform_weights = not s.weighted
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

    def target(self, z_theta: Tensor, reference: ReferenceView, steps: Tensor) -> tuple[Tensor, Tensor | None]:
        """log q_t (``[N, k]``, or ``[N, k+1]`` with the rest mass) and c_t (``[N]``; None without the gate), for the
        policy's subset logits ``z_theta``: the one place the target is computed (training and the target bias)."""
        T = self.temperature
        z_full = reference.require("subset_full").float()
        c = None
        if self.gate:
            z_post = reference.require("subset_post").float()
            c = self.gate_weights(z_theta, z_post, steps)
            cc = c.unsqueeze(-1)
        if self.include_rest_mass:
            ref = log_probs_with_rest(z_full, reference.require("lse_full").float(), T)
            if self.gate:
                ref = (1 - cc) * ref + cc * log_probs_with_rest(z_post, reference.require("lse_post").float(), T)
            return self._with_rest_mass(ref), c
        mix = (1 - cc) * z_full + cc * z_post if self.gate else z_full
        log_q = torch.log_softmax(mix / T, -1)
        if self.uniform_weights:  # normalise(p ⊙ const) = p: skipped, so pact_plain's q is exactly p_ref at θ_ref
            return log_q, c
        log_q = log_q + torch.log(self.token_weights)
        return log_q - torch.logsumexp(log_q, -1, keepdim=True), c

    def log_probs(self, subset: Tensor, lse: Tensor | None) -> Tensor:
        """The distribution q is compared with: softmax(subset / T) over S, or the k+1 outcomes (``lse`` at T)."""
        if self.include_rest_mass:
            return log_probs_with_rest(subset, lse, self.temperature)
        return torch.log_softmax(subset / self.temperature, -1)

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        T = self.temperature
        z_theta = policy.subset(self.safety_ids)
        log_q, c = self.target(z_theta, reference, policy.steps)
        log_p = self.log_probs(z_theta, policy.lse_at(T) if self.include_rest_mass else None)
        kl = (T * T) * kl_terms(log_q, log_p)
        metrics = {"pact/gate_mean": policy.mean(c)} if self.gate else {}
        return policy.mean(kl), metrics

    @torch.no_grad()
    def target_bias(self, reference: ReferenceView, steps: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The target's pull at θ = θ_ref, where the policy's subset logits are the reference's full-context ones.

        Returns ``[N]`` KL(q_t ‖ p_ref) (over S, or S + rest; at temperature T, without the regulariser's T²),
        ``[N, k]`` log(q_t,j / p_ref,j) on S (−inf where w_j = 0: the target gives j no mass) and c_t (or None).
        """
        z = reference.require("subset_full").float()
        log_q, c = self.target(z, reference, steps)
        log_p = self.log_probs(z, reference.require("lse_full").float() if self.include_rest_mass else None)
        return kl_terms(log_q, log_p), (log_q - log_p)[:, :z.shape[-1]], c

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
