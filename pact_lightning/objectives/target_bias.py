"""The target bias: how far PACT's target q already sits from the reference before any training (θ = θ_ref).

At θ_ref the policy's logits on S are the reference's full-context ones, so the numbers need only the reference's view
of the training batches: :class:`~pact_lightning.models.module.PactModule` feeds the batches of the first optimiser
step (every micro-batch of it, on every rank) to :class:`TargetBias`, which sums per response position and reduces over
the ranks once; nothing runs after that step. The arithmetic is :meth:`Pact.target_bias` (the objective's own target).

* ``kl_by_position[t]``: mean over the batches' positions t of KL(q_t ‖ p_ref,t) over S (S + rest with
  ``include_rest_mass``) at temperature T, without the regulariser's T²; ``kl_mean`` the mean over all positions.
  ``pact_plain``'s is exactly 0 (q = p_ref).
* ``gate_by_position[t]``: the gate's mean c_t (``pact`` with the gate; else absent).
* per token of S: ``w`` and ``shift`` = T · mean_t log(q_t,j / p_ref,t,j), the logit shift the target asks for.
  A token with w_j = 0 gets no mass in q, so its shift is −∞: written as null with ``zero_weight: true``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pact_lightning.record.run import TargetBias as TargetBiasRecord


class TargetBias:
    """Running sums of the target bias over batches at θ_ref; :meth:`record` gives results.json's block."""

    def __init__(self, objective) -> None:
        self.objective = objective
        k = objective.safety_ids.numel()
        self.kl = torch.zeros(0, dtype=torch.float64)  # [positions] sums
        self.gate = torch.zeros(0, dtype=torch.float64)
        self.count = torch.zeros(0, dtype=torch.float64)
        self.log_ratio = torch.zeros(k, dtype=torch.float64)  # Σ over all positions; −inf stays −inf
        self.done = False

    @staticmethod
    def _grow(sums: Tensor, n: int) -> Tensor:
        return sums if sums.numel() >= n else torch.cat([sums, sums.new_zeros(n - sums.numel())])

    def update(self, reference, steps: Tensor) -> None:
        """Add one batch: ``reference`` its ReferenceView, ``steps`` its ``[N]`` response positions."""
        if steps.numel() == 0:
            return
        kl, log_ratio, c = self.objective.target_bias(reference, steps)
        steps = steps.long().cpu()
        n = int(steps.max()) + 1
        self.kl, self.gate, self.count = (self._grow(t, n) for t in (self.kl, self.gate, self.count))
        self.kl.index_add_(0, steps, kl.double().cpu())
        self.count.index_add_(0, steps, torch.ones_like(steps, dtype=torch.float64))
        if c is not None:
            self.gate.index_add_(0, steps, c.double().cpu())
        self.log_ratio += log_ratio.double().sum(0).cpu()

    def reduce(self, strategy) -> None:
        """Sum over the ranks (each saw its own share of the first step's batches); once, in lockstep."""
        if strategy is None or getattr(strategy, "world_size", 1) == 1:
            return
        device = strategy.root_device
        length = strategy.all_gather(torch.tensor(self.kl.numel(), device=device)).max()
        flat = torch.cat([self._grow(t, int(length)) for t in (self.kl, self.gate, self.count)] + [self.log_ratio])
        flat = strategy.reduce(flat.to(device), reduce_op="sum").cpu()
        n = int(length)
        self.kl, self.gate, self.count, self.log_ratio = flat[:n], flat[n:2 * n], flat[2 * n:3 * n], flat[3 * n:]

    def record(self, tokens) -> TargetBiasRecord | None:
        """The block of results.json; None when no batch was seen (a resumed run: its first step is long past)."""
        total = float(self.count.sum())
        if total == 0:
            return None
        seen = self.count > 0
        by_pos = lambda sums: [float(s / n) if n > 0 else None for s, n in zip(sums.tolist(), self.count.tolist())]
        T = self.objective.temperature
        shift = (T * self.log_ratio / total).tolist()
        w = self.objective.token_weights.tolist()
        rows = [{"id": int(i), "token": tok, "w": float(wj),
                 **({"shift": None, "zero_weight": True} if math.isinf(sj) and sj < 0 else {"shift": float(sj)})}
                for i, tok, wj, sj in zip(tokens.ids.tolist(), tokens.tokens, w, shift)]
        return TargetBiasRecord(kl_mean=float(self.kl[seen].sum() / total), kl_by_position=by_pos(self.kl),
                                gate_by_position=by_pos(self.gate) if self.objective.gate else None,
                                positions=[int(n) for n in self.count.tolist()], temperature=T, tokens=rows)
