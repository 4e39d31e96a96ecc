r"""Lisa (Huang et al., 2024, "Lazy Safety Alignment for Large Language Models against Harmful Fine-tuning"):
Bi-State Optimisation with a proximal term (docs/defence_methods.md, "Lisa"; the authors' code: git-disl/Lisa
``trainer.py → LisaTrainer``).

The run alternates two states on the optimiser-step clock t (0-based), starting with alignment:

.. math::

    state(t) = A \;\text{ if } t \bmod (K_a + K_f) < K_a, \text{ else } F

In state A the step trains on the next batch of the alignment data (the loader's user batch of that step is
discarded); in state F on the user batch. Each phase is pulled toward the parameters θ̄ it started from (the other
state's last iterate, θ_0 for the first phase):

.. math::

    L = L_{CE}(\text{batch of } state(t)) + 1[t > w·T] · \frac{ρ}{2} \sum_p \| θ_p − θ̄_p \|^2

over every trainable tensor (each LoRA factor separately, squared Frobenius, not averaged), with λ = ρ, T the run's
optimiser steps and w = ``prox_warmup_frac`` (the term is off for the first 10% of steps). T is the user loader's: Lisa
replaces user steps, it does not add steps. Both states share one optimiser and one schedule.

The anchor is saved in every checkpoint, so a resumed run keeps pulling toward the same point. Under DDP each rank
draws its own shard of the alignment data (a DistributedSampler), and every rank computes the same state(t).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

from torch import Tensor

from pact_lightning.errors import ConfigError
from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView
from pact_lightning.objectives.settings import LisaSettings
from pact_lightning.schema import check_settings


class Lisa(Objective):
    """``settings``: those of :class:`LisaSettings` (K_a, K_f, the proximal term's warm-up)."""

    needs_alignment_data = True

    def __init__(self, lam: float = 1.0, safety_tokens=None, **settings) -> None:
        super().__init__(lam=lam, safety_tokens=safety_tokens)
        s = check_settings(LisaSettings, settings, prefix="method.objective")
        if s.finetune_steps == 0:
            raise ConfigError("method.objective.finetune_steps=0 never trains on the user data (Lisa would stay in its "
                              "alignment state); use finetune_steps >= 1")
        self.align_steps, self.finetune_steps, self.prox_warmup_frac = s.align_steps, s.finetune_steps, s.prox_warmup_frac
        self._params: list[Tensor] = []
        self.anchor: list[Tensor] = []
        self._alignment = None
        self._batches: Iterator[dict] | None = None
        self._drawn = 0  # alignment batches trained on so far (a resume skips them)
        self._state: str | None = None  # the state of the last step seen
        self._step, self._total = 0, 1

    def bind_alignment_data(self, policy, alignment) -> None:
        """The policy's trainable tensors (the proximal term's θ; the anchor starts at θ_0) and the alignment data (a
        set-up PoisonMixDataModule whose ``batch_size`` is the user batch size; its ``cycling_batches`` reshuffle on
        every pass, as the authors' loader)."""
        self._params = [p for p in policy.parameters() if p.requires_grad]
        self.anchor = [p.detach().clone() for p in self._params]
        self._alignment = alignment

    def state(self, step: int) -> str:
        """``align`` or ``finetune`` at optimiser step ``step``."""
        if self.align_steps == 0 or self._alignment is None:
            return "finetune"
        return "align" if step % (self.align_steps + self.finetune_steps) < self.align_steps else "finetune"

    def step_batch(self, batch: dict, step: int, total_steps: int, rank: int = 0, world_size: int = 1) -> dict:
        self._step, self._total = step, max(int(total_steps), 1)
        state = self.state(step)
        if self._state is not None and state != self._state:  # a new phase: anchored where the last one ended
            self.anchor = [p.detach().clone() for p in self._params]
        self._state = state
        if self.anchor and self.anchor[0].device != self._params[0].device:  # once: the policy moved to its device
            self.anchor = [a.to(p.device) for a, p in zip(self.anchor, self._params)]
        if state == "finetune":
            return batch
        if self._batches is None:  # a resumed run continues where the alignment data stopped
            self._batches = itertools.islice(self._alignment.cycling_batches(rank, world_size), self._drawn, None)
        self._drawn += 1
        device = batch["input_ids"].device
        return {k: v.to(device) for k, v in next(self._batches).items()}

    def proximal_active(self) -> bool:
        return self._step > self.prox_warmup_frac * self._total

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        if not self._params:
            raise RuntimeError("Lisa.bind_alignment_data(policy, alignment) was not called: build.objective binds it")
        in_align = policy.lse.new_tensor(float(self._state == "align"))
        if not self.proximal_active():
            return policy.lse.new_zeros(()), {"lisa/align_state": in_align}
        reg = 0.5 * sum(((p.float() - a.to(p.device).float()) ** 2).sum() for p, a in zip(self._params, self.anchor))
        return reg, {"lisa/proximal": reg.detach(), "lisa/align_state": in_align}

    def checkpoint_state(self) -> dict[str, Any]:
        return {"anchor": [a.cpu() for a in self.anchor], "state": self._state, "drawn": self._drawn}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        if not state:
            raise RuntimeError("this checkpoint holds no Lisa state (anchor, phase, alignment batches drawn): it was "
                               "not written by a Lisa run of this version; resume from the run's own checkpoint or "
                               "start afresh (ckpt_path=null)")
        self.anchor = [a.to(p.device) for a, p in zip(state["anchor"], self._params)]
        self._state, self._drawn, self._batches = state["state"], state["drawn"], None
