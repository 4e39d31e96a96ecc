"""The stages a training run goes through, each a function of the composed config.

``train.py`` calls them in order: aligned model → policy + tokenizer → safety tokens → objective → data → reference →
LightningModule → Trainer → fit → save → evaluate → results.json. Keeping them here keeps the Hydra app on one screen.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from pact_lightning import sweep
from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.models.loading import load_model, weights_source
from pact_lightning.models.module import PactModule
from pact_lightning.models.reference import AdapterDisabled, FrozenCopy, ReferenceProvider
from pact_lightning.objectives.base import Objective
from pact_lightning.safety.tokens import SafetyTokens, load_safety_tokens
from pact_lightning.utils.io import atomic_dir, atomic_path
from pact_lightning.utils.strategies import gathered_trainable_state, shards_parameters
from pact_lightning.utils.timing import stage, timings

log = logging.getLogger(__name__)

# keys of a `method` config that are not constructor arguments of the objective
METHOD_META_KEYS = ("name", "safety_tokens", "num_safety_tokens")


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def aligned_model_config(cfg: DictConfig) -> DictConfig:
    """The model config of the aligned model the run fine-tunes: ``cfg.model`` itself, or — when the alignment stage is
    on — the aligned checkpoint it produces (built once, then reused from the cache)."""
    if not cfg.align.get("enabled", False):
        return cfg.model
    from pact_lightning.alignment import ensure_aligned

    return ensure_aligned(cfg)


def safety_tokens(cfg: DictConfig, model_cfg: DictConfig, tokenizer, objective_cls: type[Objective]) -> SafetyTokens | None:
    """The set S for this run: from ``method.safety_tokens`` if given, else built (and cached) for the aligned/base pair.
    For objectives that do not need S it only feeds the per-step safety diagnostic, skipped (with a warning) when the
    model names no base model to select S against or the base is not at hand."""
    path = cfg.method.get("safety_tokens")
    if path is None:
        from pact_lightning.safety.selection import ensure_artifact

        try:
            path = ensure_artifact(cfg, model_cfg)
        except (ConfigError, ArtifactError, OSError) as err:
            if objective_cls.needs_safety_tokens:
                raise
            log.warning("No safety-token diagnostic (train/safety/*) for method=%s: %s", cfg.method.name, err)
            return None
    return load_safety_tokens(path, int(cfg.method.num_safety_tokens), tokenizer)


def objective(cfg: DictConfig, tokens: SafetyTokens | None) -> Objective:
    kwargs = {k: v for k, v in cfg.method.items() if k not in METHOD_META_KEYS}
    return instantiate(OmegaConf.create(kwargs), safety_tokens=tokens)


def objective_class(cfg: DictConfig) -> type[Objective]:
    from hydra.utils import get_class

    try:
        return get_class(cfg.method._target_)
    except Exception as err:  # noqa: BLE001 - Hydra wraps import errors in several types
        raise ConfigError(f"method._target_={cfg.method._target_!r} cannot be imported ({err}); pick a method from "
                          "conf/method/ (sft, pact, pact_plain, kl_full, tokenwise)") from None


def covers_an_epoch(cfg: DictConfig, datamodule) -> bool:
    """Whether the run trains on every example at least once. Building the reference cache costs about what one epoch
    of online reference passes costs (docs/performance.md), so only then is the cache the cheaper choice."""
    trainer = cfg.get("trainer") or {}
    steps_per_epoch = datamodule.num_samples // datamodule.batch_size
    batches = trainer.get("limit_train_batches")
    if trainer.get("fast_dev_run") or (batches is not None and (batches < 1.0 if isinstance(batches, float)
                                                                 else batches < steps_per_epoch)):
        return False
    max_steps = trainer.get("max_steps", -1)
    return max_steps is None or max_steps < 0 or max_steps * trainer.get("accumulate_grad_batches", 1) >= steps_per_epoch


def reference(cfg: DictConfig, model_cfg: DictConfig, policy, objective: Objective, datamodule) -> ReferenceProvider | None:
    """The reference provider ``reference.mode`` asks for (None when nothing reads the reference)."""
    if not objective.uses_reference:
        return None
    mode = cfg.reference.mode
    is_lora = hasattr(policy, "disable_adapter")
    if mode == "auto":
        if objective.lam == 0 and not is_lora:  # only the diagnostic would read it: not worth a second full model
            log.info("train/safety/kl_on_S is not logged: with λ = 0 and full fine-tuning it would need a second copy "
                     "of the model; reference.mode=frozen_copy logs it")
            return None
        cacheable = "logits" not in objective.reference_fields  # kl_full needs the full vocabulary
        worth_a_cache = objective.lam > 0 and covers_an_epoch(cfg, datamodule)  # λ = 0: the diagnostic reads it only
        mode = "cached" if cacheable and worth_a_cache else ("adapter_disabled" if is_lora else "frozen_copy")
        log.info("reference.mode=auto: %s", mode)
    if mode == "adapter_disabled":
        return AdapterDisabled(policy)
    if mode == "frozen_copy":
        ref_model, _ = load_model(model_cfg, lora=False)
        return FrozenCopy(ref_model)
    if mode == "cached":
        from pact_lightning.models.reference_cache import build_cached_reference

        return build_cached_reference(cfg, model_cfg, objective, datamodule)
    raise ConfigError(f"reference.mode={mode!r} is unknown; use auto, frozen_copy, adapter_disabled or cached")


def wandb_offline(requested: bool | None) -> bool:
    """Run W&B offline unless a key is set and the W&B host answers (explicit WANDB_MODE/``offline`` win)."""
    if requested is not None:
        return bool(requested)
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    if not os.environ.get("WANDB_API_KEY"):
        return True
    url = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        socket.create_connection((url.hostname, url.port or (80 if url.scheme == "http" else 443)), timeout=3).close()
        return False
    except OSError:
        return True


def loggers(cfg: DictConfig) -> list:
    out = []
    for name, spec in (cfg.get("logger") or {}).items():
        if spec is None:
            continue
        if name == "wandb":
            offline = wandb_offline(spec.get("offline"))
            os.environ["WANDB_MODE"] = "offline" if offline else "online"
            Path(spec.save_dir).mkdir(parents=True, exist_ok=True)
            out.append(instantiate(spec, offline=offline))
            if offline:
                log.info("W&B runs offline (no API key, no network, or WANDB_MODE=offline); upload later with: "
                         "wandb sync %s/wandb/offline-run-*", spec.save_dir)
        else:
            out.append(instantiate(spec))
    return out


def log_run_config(trainer: L.Trainer, cfg: DictConfig, model_cfg: DictConfig, objective: Objective,
                   tokens: SafetyTokens | None) -> None:
    # the setting as flat columns (method, lam, num_safety_tokens, poison_ratio, seed, model, task, ...) for W&B's
    # table and parallel-coordinates views, then the whole config
    params = {**run_metadata(cfg, model_cfg, objective, tokens), "config": OmegaConf.to_container(cfg, resolve=True),
              "safety_tokens": tokens.tokens if tokens is not None else None}
    for lg in trainer.loggers:
        lg.log_hyperparams(params)


def module(cfg: DictConfig, policy, objective: Objective, reference: ReferenceProvider | None) -> PactModule:
    return PactModule(policy, objective, reference, optimizer=instantiate(cfg.optim.optimizer),
                      scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
                      scheduler_interval=cfg.optim.get("interval", "epoch"), ce_chunk_size=cfg.get("ce_chunk_size"))


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    if path == "last":
        path = output_dir(cfg) / "checkpoints" / "last.ckpt"
    if Path(path).is_dir():  # a sharded checkpoint (DeepSpeed): a folder its strategy reads and checks itself
        return str(path)
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={str(path)!r} does not exist; pass an existing Lightning checkpoint, or "
                          "ckpt_path=last together with the interrupted run's hydra.run.dir")
    try:  # torch.save writes a zip archive: a truncated one has no central directory, a damaged record a bad CRC
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        damaged = str(err)
    if damaged is not None:
        raise ArtifactError(f"ckpt_path={str(path)!r} is truncated or corrupt ({damaged}), or not a Lightning "
                            f"checkpoint; resume from another checkpoint in {Path(path).parent} or start the run afresh")
    return str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint next to its target and renames it into place, so a run killed while saving keeps the
    previous complete ``last.ckpt`` (Lightning's own writer copies from /tmp, which is not atomic across filesystems)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def save_final(policy, tokenizer, directory: Path) -> Path:
    """The trained LoRA adapter (or the full weights) in HF format, loadable with ``evaluate checkpoint=<dir>``."""
    with atomic_dir(directory) as tmp:
        policy.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return directory


def run_metadata(cfg: DictConfig, model_cfg: DictConfig, objective: Objective,
                 tokens: SafetyTokens | None) -> dict[str, Any]:
    # λ as configured, as the tags and run names show it; 0 when the objective has none (SFT ignores a given λ)
    return {"method": cfg.method.name, "lam": cfg.method.lam if objective.lam else 0,
            # k is a setting of the objectives that use S; for the others S only feeds the diagnostic
            "num_safety_tokens": tokens.k if tokens is not None and objective.needs_safety_tokens else None,
            "poison_ratio": cfg.data.poison_ratio, "num_samples": cfg.data.num_samples, "seed": cfg.seed,
            "model": cfg.model.name, "task": cfg.data.get("task"), "run_dir": str(output_dir(cfg)),
            "model_weights": weights_source(model_cfg), "safety_tokens": tokens.path if tokens is not None else None}


def evaluator(cfg: DictConfig):
    """The Evaluator of ``cfg.eval`` (None when evaluation after fit is off)."""
    ev = cfg.get("eval")
    if ev is None or not ev.get("after_fit", True):
        return None
    return instantiate(ev.evaluator, log_generations=bool(ev.get("log_generations", False)))


def eval_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The evaluation blocks of results.json as logger metrics: ``eval/<name>`` for the evaluated model (per set and
    category included, e.g. ``eval/harmful_score/strongreject/Violence``), ``eval/reference/<name>`` for the reference."""
    out = {}
    for block, prefix in (("final", "eval/"), ("reference", "eval/reference/")):
        values = results.get(block) or {}
        out |= {prefix + k: v for k, v in {**values, **values.get("detail", {})}.items() if isinstance(v, (int, float))}
    return out


def safety_eval_prompts(cfg: DictConfig, evaluator) -> list[str]:
    """The harmful prompts of the configured safety evaluation, which no poison example may repeat: also when this run
    skips the evaluation (``eval.after_fit=false``), since a later ``evaluate`` scores the same sets."""
    if evaluator is None and cfg.get("eval") is not None:
        evaluator = instantiate(cfg.eval.evaluator)
    return evaluator.harmful_prompts() if evaluator is not None else []


def metrics_block(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if "/" not in k} | {"detail": {k: v for k, v in metrics.items() if "/" in k}}


@contextmanager
def as_reference(policy, aligned: Callable[[], Any]):
    """The aligned model the policy started from: the policy with its adapter off (LoRA), else ``aligned()``."""
    if hasattr(policy, "disable_adapter"):
        with policy.disable_adapter():
            yield policy
    else:
        yield aligned()


def aligned_model(trainer: L.Trainer, module: PactModule, model_cfg: DictConfig, device) -> Any:
    """Full fine-tuning: the aligned weights after fit — training's frozen copy when it is whole on this rank, else
    loaded again."""
    if isinstance(module.reference, FrozenCopy) and not shards_parameters(trainer.strategy):
        return module.reference.model
    return load_model(model_cfg, lora=False)[0].to(device).eval()


def unsharded_policy(trainer: L.Trainer, model_cfg: DictConfig, policy):
    """The policy as one whole model on every rank, for saving and evaluation. FSDP and ZeRO-3 leave each rank a shard
    of the weights after fit (and their wrapped blocks run forward only in lockstep), so there the configured weights
    are loaded again and the trained parameters, gathered from all ranks, are copied in."""
    if not shards_parameters(trainer.strategy):
        return policy
    state = gathered_trainable_state(trainer.strategy, policy)
    whole, _ = load_model(model_cfg)
    missing = sorted(n for n, p in whole.named_parameters() if p.requires_grad and n not in state)
    if missing:
        raise ArtifactError(f"gathering the trained parameters after fit found no value for {len(missing)} of them "
                            f"(first: {missing[0]}); the policy was wrapped in an unexpected way — please report this "
                            f"with the trainer= and model= configs")
    whole.load_state_dict(state, strict=False)
    return whole.to(trainer.strategy.root_device).eval()


def finish(cfg: DictConfig, model_cfg: DictConfig, trainer: L.Trainer, module: PactModule, tokenizer,
           tokens: SafetyTokens | None, evaluator) -> dict[str, Any]:
    """After fit: save the policy, evaluate reference and final model, write results.json, fill the W&B summary."""
    from pact_lightning.utils.io import write_json

    out = output_dir(cfg)
    policy = unsharded_policy(trainer, model_cfg, module.policy)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    results: dict[str, Any] = run_metadata(cfg, model_cfg, module.objective, tokens)
    results["train"] = {"global_step": trainer.global_step, **metrics}
    if trainer.is_global_zero:
        results["final_dir"] = str(save_final(policy, tokenizer, out / "final"))
    if evaluator is not None:
        # full fine-tuning: the reference evaluation and the diagnostics share one copy of the aligned weights
        aligned = functools.cache(lambda: aligned_model(trainer, module, model_cfg, next(policy.parameters()).device))
        if cfg.get("evaluate_reference", True):  # comparison runs share the main run's reference
            with stage("eval_reference"), as_reference(policy, aligned) as reference_model:
                results["reference"] = metrics_block(evaluator.run(reference_model, tokenizer, out, tag="reference"))
        with stage("eval_final"):
            results["final"] = metrics_block(evaluator.run(policy, tokenizer, out, tag="final"))
        if cfg.eval.get("diagnostics") and tokens is not None and trainer.is_global_zero:  # rank 0 wrote the answers
            with stage("diagnostics"):
                results["diagnostics"] = safety_diagnostics(policy, aligned, tokenizer, tokens, out)
    results["timings"] = timings()
    if trainer.is_global_zero:
        write_json(out / "results.json", results)
        summary = {f"{block}/{k}": v for block in ("reference", "final") for k, v in results.get(block, {}).items()
                   if isinstance(v, (int, float))}
        for lg in trainer.loggers:
            lg.log_metrics(eval_metrics(results), step=trainer.global_step)
            lg.save()
            if hasattr(lg, "experiment") and hasattr(lg.experiment, "summary"):
                lg.experiment.summary.update(summary)
    results["objective"] = sweep.objective(cfg, results)
    return results


def safety_diagnostics(policy, aligned: Callable[[], Any], tokenizer, tokens: SafetyTokens, out: Path) -> str | None:
    """Per response position: the policy's mass on S and its KL to the reference on S, on its own harmful answers."""
    import json

    from pact_lightning.eval.diagnostics import log_profile_to_wandb, plot_profile, safety_token_profile

    rows = [json.loads(line) for line in (out / "generations_final.jsonl").read_text(encoding="utf-8").splitlines()]
    pairs = [(r["prompt"], r["response"]) for r in rows if r["kind"] == "harmful" and r["response"]]
    if not pairs:
        log.info("No safety-token profile: the final model gave no non-empty answer to a harmful prompt")
        return None

    def reference_logits(input_ids, attention_mask):
        with as_reference(policy, aligned) as reference_model:
            return reference_model(input_ids=input_ids, attention_mask=attention_mask).logits

    profile = safety_token_profile(policy, reference_logits, tokenizer, pairs, tokens.ids.to(policy.device))
    path = out / "safety_token_profile.png"
    plot_profile(profile, path)
    log_profile_to_wandb(profile, "diagnostics/safety_token_profile")
    return str(path)


def print_summary(results: dict[str, Any]) -> None:
    setting = ("method", "lam", "num_safety_tokens", "poison_ratio", "num_samples", "seed", "model", "checkpoint")
    lines = [f"run dir: {results['run_dir']}", " ".join(f"{k}={results[k]}" for k in setting if k in results)]
    for key, label in (("model_weights", "model weights"), ("safety_tokens", "safety tokens"), ("final_dir", "adapter")):
        if results.get(key):
            lines.append(f"{label}: {results[key]}")
    compare = results.get("compare", {})
    for name, run in {results.get("method", "final"): results, **compare}.items():
        if "train" in run:
            lines.append(f"train ({name}): " + ", ".join(f"{k}={v:.4g}" for k, v in run["train"].items()
                                                        if isinstance(v, float)))
    blocks = [("reference", results.get("reference")), (results.get("method", "final"), results.get("final"))]
    for name, b in blocks + [(name, run.get("final")) for name, run in compare.items()]:
        if b:
            lines.append(f"{name:>9}: harmful_score={b.get('harmful_score')} refusal_rate={b.get('refusal_rate')} "
                         f"benign_refusal_rate={b.get('benign_refusal_rate')} task_acc={b.get('task_acc')} "
                         f"num_prompts={b.get('num_prompts')}")
    for name, run in compare.items():
        lines.append(f"{name} run dir: {run.get('run_dir')}")
    if results.get("timings"):
        lines.append("wall time (s): " + ", ".join(f"{k}={v}" for k, v in results["timings"].items()))
    log.info("Summary\n  %s", "\n  ".join(lines))
