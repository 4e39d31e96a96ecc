"""The LightningModule: policy forward → reference view → objective → logged loss."""

from __future__ import annotations

import math
from typing import Any, Callable

import lightning as L
import torch
from torch import Tensor, nn

from pact_lightning.models.reference import ReferenceProvider
from pact_lightning.objectives.base import Objective, PolicyView
from pact_lightning.objectives.vocab import chunked_head


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.1):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0 (stepped every optimiser step)."""
    warmup = max(1, int(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class PactModule(L.LightningModule):
    """Wraps the trainable policy and the frozen reference.

    ``optimizer`` and ``scheduler`` are partials (Hydra ``_partial_: true``) taking the optimiser / the optimiser;
    a ``scheduler_interval="step"`` scheduler also gets ``total_steps``. Checkpoints hold only the trainable parameters
    (the LoRA adapter, or the whole policy in full fine-tuning): the reference and frozen base weights are rebuilt
    from the model config on resume.
    """

    def __init__(self, policy: nn.Module, objective: Objective, reference: ReferenceProvider | None,
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", ce_chunk_size: int | None = None,
                 run_config: dict | None = None) -> None:
        super().__init__()
        self.run_config = run_config  # the settings that define the run: every checkpoint records them
        self.policy, self.objective, self.reference = policy, objective, reference
        self.ce_chunk_size = ce_chunk_size  # chunked lm_head + CE: the [B, T, V] logits never exist (objectives/vocab.py)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.strict_loading = False  # checkpoints deliberately omit frozen weights

    def setup(self, stage: str) -> None:
        # Lightning calls this after the DataModule's setup, inside the DDP process group and before a checkpoint is
        # restored: the place where the cached reference is built from the still-aligned policy (or loaded).
        if stage == "fit" and self.reference is not None:
            self.reference.prepare(self.policy, self.objective, self.trainer.strategy)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.policy(input_ids=input_ids, attention_mask=attention_mask).logits

    def _token_denominator(self, view: PolicyView) -> Tensor | None:
        """Under DDP every rank divides by (global response tokens / world size), so averaging the ranks' gradients
        gives the token mean over the whole global batch — the same loss as one process with that batch."""
        if self.trainer is None or self.trainer.world_size == 1:
            return None
        count = torch.tensor(float(view.num_tokens), device=self.device)
        total = self.trainer.strategy.reduce(count, reduce_op="sum")
        return (total / self.trainer.world_size).clamp_min(1.0)

    def policy_view(self, batch: dict[str, Tensor]) -> PolicyView:
        if self.ce_chunk_size:
            logits = chunked_head(self.policy, batch["input_ids"], batch["attention_mask"], self.ce_chunk_size)
        else:
            logits = self(batch["input_ids"], batch["attention_mask"])
        # the safety tokens' logits come out of the same pass over the vocabulary as lse (one gradient buffer)
        return PolicyView(logits, batch["labels"], columns=self.objective.safety_ids)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        view = self.policy_view(batch)
        view.denominator = self._token_denominator(view)
        reference = self.reference(batch, view, self.objective) if self.reference is not None else None
        out = self.objective(view, reference)
        for term, value in (("cross-entropy (train/ce)", out.ce), ("regulariser (train/reg)", out.reg),
                            ("total loss (train/loss)", out.loss)):
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"step {self.global_step}: the {term} is {value.item()}; lower optim.optimizer.lr, check the data of "
                    f"this batch (indices {batch['index'].tolist()}) or use a float32 model (model.dtype=float32)")
        bs = batch["input_ids"].shape[0]
        self.log_dict({"train/loss": out.loss, "train/ce": out.ce, "train/reg": out.reg}, prog_bar=True,
                      batch_size=bs, sync_dist=True)
        self.log_dict({f"train/{k}": v for k, v in out.metrics.items()}, batch_size=bs, sync_dist=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        self.log("train/tokens", float(view.num_tokens), batch_size=bs, reduce_fx="sum", sync_dist=True)  # global count
        return out.loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        if self.scheduler_interval == "step":
            scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        else:
            scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def trainable_state_dict(self) -> dict[str, Tensor]:
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in trainable}

    def trainable_shapes(self) -> dict[str, torch.Size]:
        return {n: p.shape for n, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = self.trainable_state_dict()
        checkpoint["pact_run"] = self.run_config
