"""Building a training run from the composed config, part by part.

``train.py`` calls these in order: aligned model → policy + tokenizer → safety tokens → objective → evaluator → data →
reference → LightningModule → Trainer. Each takes the config sections it reads; the library modules they call take
only their own section. :func:`module` and :func:`trainer` are the one way a LightningModule and a Trainer are built:
the alignment stage and the benchmark use them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.plugins.environments import SLURMEnvironment
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pact_lightning import defences
from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.models.loading import is_lora, load_model, weights_digest
from pact_lightning.models.module import PactModule, TrainingStep
from pact_lightning.models.reference import AdapterDisabled, FrozenCopy, ReferenceProvider
from pact_lightning.objectives.base import Objective
from pact_lightning.safety.tokens import SafetyTokens, load_safety_tokens
from pact_lightning.setting import objective_class
from pact_lightning.utils.checkpoints import AtomicCheckpointIO
from pact_lightning.utils.fingerprint import file_digest
from pact_lightning.utils.precision import resolve as resolve_precision
from pact_lightning.utils.loggers import loggers
from pact_lightning.utils.strategies import master_weights, uses_fsdp, zero_stage

log = logging.getLogger(__name__)


def aligned_model_config(cfg: DictConfig) -> DictConfig:
    """The model config of the aligned model the run fine-tunes: ``cfg.model`` itself, or — when the alignment stage is
    on — the aligned checkpoint it produces (built once, then reused from the cache)."""
    from pact_lightning.alignment import defence_of, ensure_aligned

    defence = defence_of(cfg.align)
    if not cfg.align.enabled:
        if defence is not None:
            raise ConfigError(f"align/defence={defence.name} is an alignment-stage defence, but the alignment stage is "
                              f"off for model={cfg.model.name} (already aligned); set align.enabled=true to align it "
                              "again with the defence, or drop align/defence")
        return cfg.model
    if defence is not None:  # before the (long) alignment stage, not after it
        defence.check(instantiate(cfg.data.harmful), safety_eval_prompts(cfg.eval, None))
    return ensure_aligned(cfg.align, cfg.model, cfg.paths.cache_dir, accelerator=cfg.trainer.accelerator)


def policy(cfg: DictConfig, model_cfg: DictConfig):
    """The policy (with a fresh LoRA adapter when ``model.lora`` is set) and its tokenizer, its trainable parameters and
    buffers in float32 (mixed precision: ``utils/strategies.master_weights``)."""
    precision = str(cfg.trainer.precision)
    if precision in ("bf16-true", "16-true"):
        log.warning("trainer.precision=%s casts the whole policy to %s, the LoRA adapter and AdamW's state included (at "
                    "small learning rates many updates round away) and RoPE's inv_freq too; bf16-mixed keeps them in "
                    "float32", precision, precision.split("-")[0])
    if zero_stage(cfg.trainer) == 3 and cfg.ce_chunk_size:
        raise ConfigError(f"ce_chunk_size={cfg.ce_chunk_size} reads lm_head.weight outside a forward pass, where DeepSpeed "
                          "ZeRO-3 leaves only this rank's empty partition of it; set ce_chunk_size=null with "
                          "trainer=deepspeed_zero3")
    model, tokenizer = load_model(model_cfg)
    return master_weights(model, uniform=uses_fsdp(cfg.trainer)), tokenizer


def safety_tokens(cfg: DictConfig, model_cfg: DictConfig, policy, tokenizer) -> SafetyTokens | None:
    """The set S for this run: from ``method.safety_tokens`` if given, else built (and cached) for the aligned/base pair.
    For objectives that do not need S it only feeds the per-step safety diagnostic, skipped (with a warning) when the
    model names no base model to select S against or the base is not at hand."""
    path, k = cfg.method.safety_tokens, int(cfg.method.num_safety_tokens)
    cached = path is None
    if cached:
        from pact_lightning.safety.selection import ensure_artifact

        try:
            path = ensure_artifact(cfg.safety, model_cfg, cfg.paths.cache_dir, k)
        except (ConfigError, ArtifactError, OSError) as err:
            if objective_class(cfg).needs_safety_tokens:
                raise
            log.warning("No safety-token diagnostic (train/safety/*) for method=%s: %s", cfg.method.name, err)
            return None
    return load_safety_tokens(path, k, tokenizer, cached=cached, aligned_weights=weights_digest(policy))


@dataclass
class DefenceInputs:
    """What a fine-tuning defence may read besides a batch (``ObjectiveDefence.bind``), built only when it asks."""

    cfg: DictConfig
    model_cfg: DictConfig
    policy: Any
    tokenizer: Any

    def directions(self):
        """The alignment directions V = W_aligned − W_base of the policy's adapted modules (AsFT, SafeLoRA)."""
        from pact_lightning.defences.base_weights import load_directions

        return load_directions(self.policy, self.model_cfg, f"method={self.cfg.method.name}")

    def alignment_data(self):
        """The alignment data (Lisa): harmful prompts → refusals and benign prompts → helpful answers, set up."""
        from pact_lightning.alignment import alignment_data

        cfg = self.cfg
        # method.alignment_data, or else the alignment stage's own mix — the examples the stage trained on, drawn
        # with its seed and encoded at its length, whatever the run's seed (a draw at the run's seed is another
        # alignment set, and may hold prompts the stage's length never had to fit)
        if cfg.method.get("alignment_data") is None:
            data = alignment_data(cfg.align.data, self.tokenizer, seed=int(cfg.align.seed),
                                  batch_size=cfg.data.batch_size)
        else:
            data = alignment_data(cfg.method.alignment_data, self.tokenizer, seed=cfg.seed,
                                  batch_size=cfg.data.batch_size, max_length=cfg.data.max_length)
        data.setup("fit")
        return data


def objective(cfg: DictConfig, model_cfg: DictConfig, tokens: SafetyTokens | None, policy, tokenizer) -> Objective:
    """The objective of ``method``, bound to what its defence reads (``ObjectiveDefence.bind``: the alignment
    directions for AsFT, the alignment data for Lisa)."""
    obj = instantiate(cfg.method.objective, safety_tokens=tokens)
    defence = defences.for_objective(obj)
    if defence is None:
        return obj
    if uses_fsdp(cfg.trainer) or zero_stage(cfg.trainer) == 3:
        raise ConfigError(f"method={cfg.method.name} reads the LoRA parameters themselves, which FSDP and DeepSpeed "
                          "ZeRO-3 shard across ranks; use trainer=ddp or deepspeed_zero2")
    defence().bind(obj, policy, DefenceInputs(cfg, model_cfg, policy, tokenizer))
    return obj


def posthoc(cfg: DictConfig) -> defences.PosthocDefence | None:
    """The post-hoc defence of ``posthoc`` (its settings checked), or None."""
    node = cfg.get("posthoc")
    if not node:
        return None
    defence = instantiate_defence(node)
    if not isinstance(defence, defences.PosthocDefence):
        raise ConfigError(f"posthoc._target_={node.get('_target_')} is not a post-hoc defence (a subclass of "
                          "pact_lightning.defences.PosthocDefence); pick one with posthoc=<name>")
    return defence


def instantiate_defence(node: DictConfig):
    """The defence a config node selects, built from its settings; a setting the defence refuses is raised as the
    project's own error (Hydra would wrap it)."""
    from pact_lightning.app import own_error

    try:
        return instantiate(node, _convert_="object")
    except Exception as err:  # noqa: BLE001 - Hydra wraps the constructor's error
        cause = own_error(err)
        if cause is None:
            raise
        raise cause from None


def check_posthoc(defence: defences.PosthocDefence | None, model_cfg: DictConfig, policy) -> None:
    """What a post-hoc defence needs, checked before fit (after fit a refusal would cost the run)."""
    if defence is None:
        return
    from pact_lightning.defences.base_weights import pre_alignment_config

    if not is_lora(policy):
        raise ConfigError(f"posthoc={defence.name} edits the trained LoRA adapter; this run fine-tunes fully "
                          "(model.lora=null): set model.lora or drop posthoc")
    if defence.needs_directions:
        pre_alignment_config(model_cfg, f"posthoc={defence.name}")


def evaluator(eval_cfg: DictConfig | None):
    """The Evaluator of ``eval`` (None when evaluation after fit is off)."""
    if eval_cfg is None or not eval_cfg.after_fit:
        return None
    return instantiate(eval_cfg.evaluator, log_generations=bool(eval_cfg.log_generations))


def safety_eval_prompts(eval_cfg: DictConfig | None, evaluator) -> list[str]:
    """The harmful prompts of the configured safety evaluation, which no poison example may repeat: also when this run
    skips the evaluation (``eval.after_fit=false``), since a later ``evaluate`` scores the same sets."""
    if evaluator is None and eval_cfg is not None:
        evaluator = instantiate(eval_cfg.evaluator)
    return evaluator.harmful_prompts() if evaluator is not None else []


def datamodule(cfg: DictConfig, tokenizer, evaluator):
    """The DataModule of ``data``, set up: the mix is drawn and encoded here, before anything is trained or written."""
    data = instantiate(cfg.data).attach(tokenizer, seed=cfg.seed, output_dir=Path(cfg.paths.output_dir),
                                        eval_prompts=safety_eval_prompts(cfg.eval, evaluator))
    data.setup("fit")
    return data


def planned_steps(trainer: DictConfig, data) -> int:
    """The optimiser steps the run will take; a setting that gives none (a batch larger than the data, max_steps=0,
    ...) is refused here, before anything is trained or written."""
    batches = data.num_samples // data.batch_size if data.drop_last else -(-data.num_samples // data.batch_size)
    if batches == 0:
        raise ConfigError(f"data.batch_size={data.batch_size} is larger than data.num_samples={data.num_samples}: with "
                          "drop_last no batch is left, so nothing would be trained; lower data.batch_size or raise "
                          "data.num_samples")
    limit = trainer.limit_train_batches
    batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * limit)
    per_epoch = -(-batches // trainer.accumulate_grad_batches)
    epochs = trainer.max_epochs
    steps = per_epoch * epochs if epochs is not None and epochs >= 0 else None
    if trainer.max_steps > -1:
        steps = trainer.max_steps if steps is None else min(steps, trainer.max_steps)
    if trainer.fast_dev_run:
        steps = min(per_epoch, int(trainer.fast_dev_run))
    if not steps:
        raise ConfigError(f"this setting trains 0 optimiser steps (trainer.max_steps={trainer.max_steps}, "
                          f"trainer.max_epochs={epochs}, trainer.limit_train_batches={limit}, {batches} batch(es) an "
                          "epoch); raise the one that is 0")
    return steps


def defining_config(cfg: DictConfig) -> dict:
    """The settings that define what a run trains — a checkpoint records them and a resume must match them."""
    keys = ("seed", "model", "data", "method", "optim", "align", "safety", "ce_chunk_size", "trainer.precision",
            "trainer.accumulate_grad_batches", "trainer.gradient_clip_val")
    out = {}
    for key in keys:
        node = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    for section in ("model", "data"):  # where files live, and how many workers read them, do not change the run
        out[section] = {k: v for k, v in out[section].items() if k not in ("cache_dir", "num_workers")}
    # `auto` as it resolves here: the Hydra callback that guards the run directory reads this before the task resolves it
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    out["trainer.precision"] = resolve_precision(out["trainer.precision"], accelerator)[0]
    if isinstance(out["align"], dict) and "trainer" in out["align"]:
        out["align"]["trainer"]["precision"] = resolve_precision(out["align"]["trainer"]["precision"], accelerator)[0]
    return out


def input_digests(cfg: DictConfig, policy, tokens: SafetyTokens | None) -> dict[str, dict[str, str]]:
    """What the run's inputs hold, by the setting that names them: every data file (``data.<source>.path``), the
    safety-token artifact (``method.safety_tokens``) and the aligned weights (``model``: a digest of the policy's
    frozen weights, read before training). A checkpoint records them; a resume whose inputs changed behind the same
    paths is refused (``utils/checkpoints.check_resume``)."""
    from pact_lightning.data.sources import _resolve

    out: dict[str, dict[str, str]] = {}
    for name, node in (cfg.data or {}).items():
        if OmegaConf.is_dict(node) and node.get("path") and (path := _resolve(str(node.path))).is_file():
            out[f"data.{name}.path"] = {"file": str(path), "sha256": file_digest(path)}
    if tokens is not None and tokens.path and Path(tokens.path).is_file():
        out["method.safety_tokens"] = {"file": str(tokens.path), "sha256": file_digest(tokens.path)}
    out["model"] = {"file": "the aligned model's weights", "sha256": weights_digest(policy)}
    return out


def covers_an_epoch(trainer: DictConfig, data) -> bool:
    """Whether the run trains on every example at least once. Building the reference cache costs about what one epoch
    of online reference passes costs (docs/performance.md), so only then is the cache the cheaper choice."""
    steps_per_epoch = data.num_samples // data.batch_size
    batches = trainer.limit_train_batches
    if trainer.fast_dev_run or (batches is not None and (batches < 1.0 if isinstance(batches, float)
                                                          else batches < steps_per_epoch)):
        return False
    max_steps = trainer.max_steps
    return max_steps is None or max_steps < 0 or max_steps * trainer.accumulate_grad_batches >= steps_per_epoch


def reference(cfg: DictConfig, model_cfg: DictConfig, policy, objective: Objective, data) -> ReferenceProvider | None:
    """The reference provider ``reference.mode`` asks for (None when nothing reads the reference)."""
    if not objective.uses_reference:
        return None
    mode = cfg.reference.mode
    if mode == "auto":
        if objective.lam == 0 and not is_lora(policy):  # only the diagnostic would read it: not worth a second model
            log.info("train/safety/kl_on_S is not logged: with λ = 0 and full fine-tuning it would need a second copy "
                     "of the model; reference.mode=frozen_copy logs it")
            return None
        # kl_full needs the full vocabulary; Lisa trains on batches the cache does not index
        cacheable = "logits" not in objective.reference_fields and not objective.needs_alignment_data
        # only the diagnostic reads it (λ = 0, or a regulariser that reads no reference): not worth a build
        worth_a_cache = (objective.lam > 0 and bool(objective.regularizer_fields)
                         and covers_an_epoch(cfg.trainer, data))
        mode = "cached" if cacheable and worth_a_cache else ("adapter_disabled" if is_lora(policy) else "frozen_copy")
        log.info("reference.mode=auto: %s", mode)
    if mode == "adapter_disabled":
        return AdapterDisabled(policy)
    if mode == "frozen_copy":
        ref_model, _ = load_model(model_cfg, lora=False)
        # the policy's dtypes, so that the copy computes what the policy computed before its first step: float32
        # buffers, and float32 throughout where the policy is (full fine-tuning; FSDP, which flattens the copy's
        # embeddings and head into one unit with the policy's and needs one dtype there)
        uniform = {p.dtype for p in policy.parameters()} == {torch.float32}
        return FrozenCopy(master_weights(ref_model.requires_grad_(False), uniform=uniform))
    if mode == "cached":
        from pact_lightning.models.reference_cache import CachedReference, check_cacheable

        check_cacheable(objective)
        return CachedReference(cfg.reference.cache_dir, data, name=str(model_cfg.name),
                               build_batch_size=cfg.reference.build_batch_size)
    raise ConfigError(f"reference.mode={mode!r} is unknown; use auto, frozen_copy, adapter_disabled or cached")


def module(policy, objective: Objective, reference: ReferenceProvider | None, optim: DictConfig,
           ce_chunk_size: int | None = None, run_config: dict | None = None,
           step: TrainingStep | None = None) -> PactModule:
    """The LightningModule of a run, a comparison run, the alignment stage or the benchmark: ``policy`` trained on
    ``objective`` against ``reference`` with the optimiser and schedule of an ``optim`` section
    (pact_lightning/conf/optim/, ``align.optim``), and an alignment-stage defence's ``step`` around the loss."""
    return PactModule(policy, objective, reference, optimizer=instantiate(optim.optimizer),
                      scheduler=instantiate(optim.scheduler) if optim.get("scheduler") else None,
                      scheduler_interval=optim.interval, ce_chunk_size=ce_chunk_size, run_config=run_config, step=step)


def run_module(cfg: DictConfig, policy, objective: Objective, reference: ReferenceProvider | None) -> PactModule:
    """The run's LightningModule: :func:`module` with ``optim``, ``ce_chunk_size`` and the settings it records."""
    return module(policy, objective, reference, cfg.optim, ce_chunk_size=cfg.ce_chunk_size,
                  run_config=defining_config(cfg))


def trainer(section: DictConfig, **runtime: Any) -> L.Trainer:
    """The Trainer of a trainer section (pact_lightning/conf/trainer/, ``align.trainer``), its precision ``auto``
    resolved for its accelerator, with ``runtime``: what only the running process knows (loggers, callbacks, plugins,
    the alignment stage's device)."""
    accelerator = runtime.get("accelerator", section.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator} (a GPU preset) but no CUDA GPU is visible "
                          "(torch.cuda.is_available() is False: no GPU, or a CPU build of torch); use trainer=cpu here")
    return instantiate(section, precision=resolve_precision(section.precision, accelerator)[0], **runtime)


def run_trainer(cfg: DictConfig, ckpt_path: str | None = None) -> L.Trainer:
    """The run's Trainer: :func:`trainer` of ``trainer`` with the run's loggers and callbacks, writing checkpoints
    atomically. ``ckpt_path``: the checkpoint the run resumes from (its W&B run continues when it is its own)."""
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # requeue is LastCheckpoint's (and submitit's) job, not Lightning's hpc_ckpt files
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return trainer(cfg.trainer, logger=loggers(cfg.logger, ckpt_path), plugins=plugins,
                   callbacks=[instantiate(c) for c in (cfg.callbacks or {}).values() if c])
