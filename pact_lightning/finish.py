"""After fit: save the policy, evaluate the reference and the fine-tuned model, run the safety-token diagnostics, and
assemble the run's results (``pact_lightning.results`` writes them)."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import lightning as L
from omegaconf import DictConfig, OmegaConf

from pact_lightning import card
from pact_lightning import results as run_results
from pact_lightning import sweep
from pact_lightning.defences import PosthocDefence
from pact_lightning.errors import ArtifactError
from pact_lightning.eval.cache import cached_run
from pact_lightning.eval.scoring import block as metrics_block
from pact_lightning.models.loading import is_lora, load_model
from pact_lightning.models.module import PactModule
from pact_lightning.models.reference import FrozenCopy
from pact_lightning.record import CompareEntry, Evaluation, RunRecord
from pact_lightning.safety.selection import format_table
from pact_lightning.safety.tokens import SafetyTokens
from pact_lightning.utils.io import atomic_dir
from pact_lightning.utils.strategies import gathered_trainable_state, shards_parameters
from pact_lightning.utils.timing import peak_memory_mib, stage, timings

log = logging.getLogger(__name__)


def save_final(policy, tokenizer, directory: Path) -> Path:
    """The trained LoRA adapter (or the full weights) in HF format, loadable with ``evaluate checkpoint=<dir>``."""
    with atomic_dir(directory) as tmp:
        policy.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return directory


@contextmanager
def as_reference(policy, aligned: Callable[[], Any]):
    """The aligned model the policy started from: the policy with its adapter off (LoRA), else ``aligned()``."""
    if is_lora(policy):
        with policy.disable_adapter():
            yield policy
    else:
        yield aligned()


def aligned_model(trainer: L.Trainer, module: PactModule, model_cfg: DictConfig, device) -> Any:
    """Full fine-tuning: the aligned weights after fit, on ``device`` — training's frozen copy when it is whole on this
    rank (Lightning's teardown moved it to the CPU with the module), else loaded again."""
    if isinstance(module.reference, FrozenCopy) and not shards_parameters(trainer.strategy):
        return module.reference.model.to(device)
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
           tokens: SafetyTokens | None, evaluator, posthoc: PosthocDefence | None = None) -> RunRecord:
    """Save the policy, evaluate reference and final model, log the evaluation; return the run's record."""
    out = Path(cfg.paths.output_dir)
    # Lightning's teardown moved the module to the CPU after fit: evaluate where the strategy trained
    policy = unsharded_policy(trainer, model_cfg, module.policy).to(trainer.strategy.root_device)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    record = run_results.run_record(cfg, model_cfg, tokens)
    record.train = {"global_step": trainer.global_step, **metrics}
    record.target_bias = getattr(module, "target_bias", None)  # computed before the first step (models/module.py)
    if record.target_bias is not None and tokens is not None and trainer.is_global_zero:
        log.info("Safety tokens with the target's logit shift at θ_ref:\n%s", format_table(tokens, record.target_bias))
    record.devices = {"train": str(trainer.strategy.root_device), "evaluate": str(next(policy.parameters()).device),
                      "precision": str(trainer.precision)}
    if trainer.is_global_zero:
        record.final_dir = str(save_final(policy, tokenizer, out / "final"))
    if evaluator is not None:
        record.judge = run_results.judge_name(evaluator.judge)
        # full fine-tuning: the reference evaluation and the diagnostics share one copy of the aligned weights
        aligned = functools.cache(lambda: aligned_model(trainer, module, model_cfg, next(policy.parameters()).device))
        if cfg.eval.reference:  # comparison runs share the main run's
            with stage("eval_reference"), as_reference(policy, aligned) as reference_model:
                # the same reference for every point of a sweep: evaluated once, then reused (eval/cache.py)
                metrics = cached_run(evaluator, reference_model, tokenizer, out, "reference",
                                     cfg.eval.cache_dir if cfg.eval.cache else None,
                                     broadcast=trainer.strategy.broadcast, is_writer=trainer.is_global_zero)
                record.reference = Evaluation.from_dict(metrics_block(metrics))
        with stage("eval_final"):
            record.final = Evaluation.from_dict(metrics_block(evaluator.run(policy, tokenizer, out, tag="final")))
        if cfg.eval.diagnostics and tokens is not None and trainer.is_global_zero:  # rank 0 wrote the answers
            with stage("diagnostics"):
                record.diagnostics = safety_diagnostics(policy, aligned, tokenizer, tokens, out)
    if posthoc is not None:  # on every rank: the evaluation shards its prompts over them
        with stage(f"posthoc_{posthoc.name}"):
            entry = posthoc_model(posthoc, model_cfg, policy, tokenizer, evaluator, record,
                                  is_writer=trainer.is_global_zero)
            record.compare = {**(record.compare or {}), entry.method: entry}
    record.timings = timings()
    record.peak_memory_mib = peak_memory_mib()  # this run's, from its start (alignment stage included when built)
    if trainer.is_global_zero:
        final_dir = Path(record.final_dir)  # the card replaces the one peft's save_pretrained writes
        card.model_card(record, model_cfg, adapter=is_lora(policy), hparams=card.hyperparameters(cfg, record),
                        repo_id=OmegaConf.select(cfg, "hub.repo_id")).save(final_dir / "README.md")
        run_results.log_eval(trainer.loggers, record, step=trainer.global_step)
        alignment = Path(model_cfg.aligned_by) / "alignment.json" if model_cfg.get("aligned_by") else None
        run_results.log_artifacts(trainer.loggers, out, record, tokens, alignment,
                                  generations=bool(cfg.eval.log_generations))
    record.objective = sweep.objective(cfg, record)
    return record


def posthoc_edit(defence: PosthocDefence, model, model_cfg: DictConfig) -> dict[str, Any]:
    """``defence``'s edit of ``model``'s adapter, in place (reading the alignment directions when it needs them);
    returns its report."""
    from pact_lightning.defences.base_weights import load_directions

    directions = load_directions(model, model_cfg, f"posthoc={defence.name}") if defence.needs_directions else None
    return defence.edit(model, directions)


def posthoc_model(defence: PosthocDefence, model_cfg: DictConfig, policy, tokenizer, evaluator, record: RunRecord,
                  is_writer: bool = True) -> CompareEntry:
    """A post-hoc defence applied to the trained adapter, as a model of its own, ``<method>+<defence>``: evaluated,
    and saved and written by ``is_writer`` (results.json, final/, generations) in ``<run dir>/posthoc/<defence>/``;
    the policy's own adapter is left as it was. Returns its ``compare`` entry, as a comparison run's."""
    out = Path(record.run_dir) / "posthoc" / defence.name
    trained = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    try:
        report = posthoc_edit(defence, policy, model_cfg)
        sub = dataclasses.replace(record.with_setting(method=f"{record.method}+{defence.name}"), run_dir=str(out),
                                  final_dir=str(out / "final"), posthoc=report, reference=None, diagnostics=None,
                                  compare=None)
        if is_writer:
            save_final(policy, tokenizer, out / "final")
        if evaluator is not None:
            sub.final = Evaluation.from_dict(metrics_block(evaluator.run(policy, tokenizer, out, tag="final")))
        sub.timings, sub.peak_memory_mib = timings(), peak_memory_mib()  # training's cost is the run's
        if is_writer:
            run_results.write(out, sub)
    finally:
        for n, p in policy.named_parameters():
            if n in trained:
                p.data.copy_(trained[n])
    return CompareEntry.of_run(sub, with_train=False)


def safety_diagnostics(policy, aligned: Callable[[], Any], tokenizer, tokens: SafetyTokens, out: Path) -> str | None:
    """Per response position: the policy's mass on S and its KL to the reference on S, on its own harmful answers."""
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
