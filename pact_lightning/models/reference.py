"""The reference π_ref: the frozen aligned model the objectives compare the policy with.

Three providers, one interface — ``provider(batch, policy_view, objective) -> ReferenceView``:

* :class:`FrozenCopy` — a second copy of the aligned weights (the authors' design), eval mode, no grad, never in the
  optimiser or a checkpoint;
* :class:`AdapterDisabled` — for a LoRA policy: the policy itself with its adapter switched off (no second copy; exact,
  since the adapter is the only trainable part);
* the precomputed safety-slice cache (``pact_lightning.models.reference_cache``).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn

from pact_lightning.errors import ConfigError
from pact_lightning.models.loading import is_lora
from pact_lightning.objectives.base import (Objective, PolicyView, ReferenceView, gather_columns, log_normaliser,
                                            response_mask, target_logits)

FULL_FIELDS = frozenset({"subset_full", "lse_full", "target_logprob", "logits"})
POST_FIELDS = frozenset({"subset_post", "lse_post"})


@torch.no_grad()
def reference_view(model: nn.Module, batch: dict[str, Tensor], fields: frozenset[str], safety_ids: Tensor,
                   temperature: float) -> ReferenceView:
    """Run ``model`` on the full context and/or the post-only context and reduce its logits to ``fields``."""
    view = ReferenceView()
    if fields & FULL_FIELDS:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        mask = response_mask(batch["labels"])
        if "subset_full" in fields:
            view.subset_full = gather_columns(logits, mask, safety_ids)
        if "lse_full" in fields:
            view.lse_full = log_normaliser(logits, mask, temperature)
        if "target_logprob" in fields:
            view.target_logprob = target_logits(logits, batch["labels"], mask).float() - log_normaliser(logits, mask)
        if "logits" in fields:
            view.logits = logits
    if fields & POST_FIELDS:
        logits = model(input_ids=batch["post_input_ids"], attention_mask=batch["post_attention_mask"]).logits
        mask = response_mask(batch["post_labels"])
        if "subset_post" in fields:
            view.subset_post = gather_columns(logits, mask, safety_ids)
        if "lse_post" in fields:
            view.lse_post = log_normaliser(logits, mask, temperature)
    return view


@contextmanager
def aligned_weights(policy: nn.Module):
    """``policy`` as the aligned reference: eval mode (no dropout), LoRA adapter disabled if it has one. Only valid
    before the first optimiser step for full fine-tuning (the cache build); always valid for a LoRA policy."""
    was_training = policy.training
    policy.eval()
    try:
        with policy.disable_adapter() if is_lora(policy) else nullcontext():
            yield policy
    finally:
        policy.train(was_training)


class ReferenceProvider(nn.Module):
    mode: str = ""

    def prepare(self, policy: nn.Module, objective: Objective, strategy) -> None:
        """Called from ``PactModule.setup`` (DataModule set up, DDP process group up, no checkpoint restored yet, so
        ``policy`` still holds the aligned weights); the cache builds or loads itself here."""

    def forward(self, batch: dict[str, Tensor], policy: PolicyView, objective: Objective) -> ReferenceView:
        raise NotImplementedError


class FrozenCopy(ReferenceProvider):
    """A separate frozen copy of the aligned model."""

    mode = "frozen_copy"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenCopy:
        # Lightning calls .train() on the whole module each epoch; the reference stays in eval mode (no dropout).
        return super().train(False)

    def forward(self, batch, policy, objective):
        return reference_view(self.model, batch, objective.reference_fields, objective.safety_ids, objective.temperature)


class AdapterDisabled(ReferenceProvider):
    """The LoRA policy with its adapter disabled: the aligned weights, with no second copy in memory."""

    mode = "adapter_disabled"

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        if not is_lora(policy):
            raise ConfigError("reference.mode=adapter_disabled needs a LoRA policy (model.lora set); with full "
                              "fine-tuning use reference.mode=frozen_copy or cached")
        self._policy = [policy]  # a list, so the policy is not registered (and saved) twice

    def forward(self, batch, policy, objective):
        with aligned_weights(self._policy[0]) as model:
            return reference_view(model, batch, objective.reference_fields, objective.safety_ids, objective.temperature)
