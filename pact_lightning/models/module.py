"""The LightningModule: policy forward → reference view → objective → logged loss."""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import lightning as L
import torch
from torch import Tensor, nn
from transformers import get_cosine_schedule_with_warmup

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.models.reference import ReferenceProvider
from pact_lightning.objectives.base import Objective, PolicyView
from pact_lightning.objectives.target_bias import TargetBias
from pact_lightning.objectives.vocab import chunked_head
from pact_lightning.utils.strategies import clip_gradients_under_fsdp, unwrapped_name

log = logging.getLogger(__name__)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.1):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0 (stepped every optimiser step):
    transformers' schedule, with the warm-up given as a share of the run's steps as the configs give it."""
    return get_cosine_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)


class TrainingStep(Protocol):
    """A defence's training step (defences/vaccine.py, defences/booster.py): it computes the step's loss around the
    module's own, ``loss(batch)``, and undoes what it set up once backward has run."""

    def __call__(self, module: PactModule, batch: dict[str, Tensor], loss: Callable[[dict[str, Tensor]], Tensor]
                 ) -> Tensor: ...

    def after_backward(self) -> None: ...


class PactModule(L.LightningModule):
    """Wraps the trainable policy and the frozen reference.

    ``optimizer`` and ``scheduler`` are partials (Hydra ``_partial_: true``) taking the optimiser / the optimiser;
    a ``scheduler_interval="step"`` scheduler also gets ``total_steps``. Checkpoints hold only the trainable parameters
    (the LoRA adapter, or the whole policy in full fine-tuning): the reference and frozen base weights are rebuilt
    from the model config on resume. ``step``: an alignment-stage defence's step around the objective's loss.
    """

    def __init__(self, policy: nn.Module, objective: Objective, reference: ReferenceProvider | None,
                 optimizer: Callable[..., torch.optim.Optimizer], scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", ce_chunk_size: int | None = None,
                 run_config: dict | None = None, step: TrainingStep | None = None) -> None:
        super().__init__()
        self.defence_step = step
        self.run_config = run_config  # the settings that define the run: every checkpoint records them
        self.run_inputs: dict | None = None  # what its input files hold (build.input_digests): recorded the same way
        self.resume_allow: list[str] = []  # the inputs a resume may change (``resume_allow``)
        self.policy, self.objective, self.reference = policy, objective, reference
        self.ce_chunk_size = ce_chunk_size  # chunked lm_head + CE: the [B, T, V] logits never exist (objectives/vocab.py)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.strict_loading = False  # checkpoints deliberately omit frozen weights
        # the target bias (objectives/target_bias.py): summed over the first optimiser step's batches only
        self._target_bias = TargetBias(objective) if hasattr(objective, "target_bias") else None
        self.target_bias = None  # its results.json block, once the first step is done

    def setup(self, stage: str) -> None:
        # Lightning calls this after the DataModule's setup, inside the DDP process group and before a checkpoint is
        # restored: the place where the cached reference is built from the still-aligned policy (or loaded).
        if stage == "fit" and self.reference is not None:
            self.reference.prepare(self.policy, self.objective, self.trainer.strategy)
            cache = getattr(self.reference, "path", None)  # reference.mode=cached: its file is an input of the run
            if cache is not None and self.run_inputs is not None:
                from pact_lightning.utils.fingerprint import file_digest

                self.run_inputs["reference.cache"] = {"file": str(cache), "sha256": file_digest(cache)}

    def on_train_start(self) -> None:
        self._total_steps = int(self.trainer.estimated_stepping_batches)  # the run's optimiser steps (Lisa's T)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.policy(input_ids=input_ids, attention_mask=attention_mask).logits

    def _token_denominator(self, view: PolicyView) -> Tensor | None:
        """Under DDP every rank divides by (global response tokens / world size), so averaging the ranks' gradients
        gives the token mean over the whole global batch — the same loss as one process with that batch."""
        if self.trainer is None or self.trainer.world_size == 1:
            return None
        # float32 whatever the default dtype: a bf16 count would round 1603 tokens to 1600
        count = torch.tensor(float(view.num_tokens), device=self.device, dtype=torch.float32)
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
        if self.defence_step is not None:
            return self.defence_step(self, batch, self.objective_loss)
        return self.objective_loss(batch)

    def on_after_backward(self) -> None:
        if self.defence_step is not None:
            self.defence_step.after_backward()

    def objective_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The objective's loss on ``batch`` (or the batch the objective trains on at this step), logged."""
        batch = self.objective.step_batch(batch, self.global_step, self._total_steps, self.global_rank,
                                          self.trainer.world_size)
        view = self.policy_view(batch)
        view.denominator = self._token_denominator(view)
        reference = self.reference(batch, view, self.objective) if self.reference is not None else None
        out = self.objective(view, reference)
        if self._target_bias is not None and not self._target_bias.done and self.global_step == 0:
            self._add_target_bias(reference, view)
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
        tokens = torch.tensor(float(view.num_tokens), device=self.device, dtype=torch.float32)
        self.log("train/tokens", tokens, batch_size=bs, reduce_fx="sum", sync_dist=True)  # the global count
        return out.loss

    def _add_target_bias(self, reference, view: PolicyView) -> None:
        if reference is None:
            self._target_bias.done = True
            return
        try:
            self._target_bias.update(reference, view.steps)
        except RuntimeError as err:  # λ = 0: the reference was not asked for the target's inputs (post-only, lse)
            log.info("No target bias: %s", err)
            self._target_bias.done = True

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # after the first optimiser step, on every rank at once: reduce, record and log the target bias (once)
        bias = self._target_bias
        if bias is None or bias.done or self.global_step < 1:
            return
        bias.done = True
        bias.reduce(self.trainer.strategy)
        tokens = self.objective.safety_tokens
        self.target_bias = bias.record(tokens)
        if self.target_bias is None or not self.trainer.is_global_zero:
            return
        scalars = {"train/target_bias/kl_mean": self.target_bias.kl_mean}
        if self.target_bias.gate_by_position is not None:
            pairs = [(g, n) for g, n in zip(self.target_bias.gate_by_position, self.target_bias.positions) if n]
            scalars["train/target_bias/gate_mean"] = sum(g * n for g, n in pairs) / sum(n for _, n in pairs)
        for logger in self.trainer.loggers:
            logger.log_metrics(scalars, step=0)
        log.info("\n".join(self.target_bias.lines()))

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

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val and clip_gradients_under_fsdp(self.trainer.strategy, gradient_clip_val):
            if gradient_clip_algorithm not in (None, "norm"):
                raise ConfigError(f"trainer.gradient_clip_algorithm={gradient_clip_algorithm} under FSDP: only 'norm' "
                                  "clipping works on sharded gradients")
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def trainable_shapes(self) -> dict[str, torch.Size]:
        """Shape of every trainable tensor, by its name in a state dict (wrapper segments removed)."""
        return {unwrapped_name(n): p.shape for n, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # only the trainable part (the LoRA adapter, or the whole policy); the frozen weights come from the model config
        trainable = self.trainable_shapes()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint["pact_run"] = self.run_config
        checkpoint["pact_inputs"] = self.run_inputs
        checkpoint["objective_state"] = self.objective.checkpoint_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # strict_loading is off (frozen weights are not saved), so a checkpoint that lacks a trainable tensor would
        # restore the step and the optimiser but not the weights, silently. FSDP pops "state_dict" and loads it itself,
        # DeepSpeed keeps the weights in its own files: without one here there is nothing to check (train.py's
        # check_resume checked a checkpoint file's tensors before anything was loaded).
        state = checkpoint.get("state_dict")
        missing = sorted(set(self.trainable_shapes()) - set(state)) if state is not None else []
        if missing:
            raise ArtifactError(f"the checkpoint being restored holds none of {len(missing)} trainable tensor(s) of "
                                f"this model (first: {missing[0]}); it was saved for another model or by another "
                                "strategy's naming. Resume from this run's own checkpoint or start afresh")
        # the reference cache is known only once prepared (setup, above): a resume whose cache file holds other rows
        # than the run trained against (a file swapped under the same name and key) is refused here, naming it
        from pact_lightning.utils.checkpoints import PREPARED_INPUTS, changed_inputs

        recorded = {k: v for k, v in (checkpoint.get("pact_inputs") or {}).items() if k in PREPARED_INPUTS}
        changed = changed_inputs(recorded, self.run_inputs, self.resume_allow)
        if changed:
            raise ConfigError(f"the checkpoint being restored was trained against a reference cache that has changed "
                              f"since: {'; '.join(changed)}. Put back the file it was trained against, start a new run "
                              "in another hydra.run.dir, or, if the change is meant, resume with "
                              "resume_allow=[reference.cache]")
        self.objective.load_checkpoint_state(checkpoint.get("objective_state") or {})
