"""The alignment stage: make an unaligned chat model safe before it is fine-tuned (docs/method.md §5).

As in the Vaccine/Booster protocol, the model is supervised-fine-tuned (LoRA, then merged) on harmful prompts answered
with refusals, mixed with benign prompts answered helpfully. The merged checkpoint is

* the aligned reference π_ref of the fine-tuning run and its starting point (the attack trains a fresh adapter on it);
* the "aligned" model of safety-token selection, whose "base" is the pre-alignment model.

The result lives in ``${paths.cache_dir}/aligned/<model>-<hash>/`` (built once under a temporary name, renamed
atomically), next to ``alignment.json``: the recipe, the loss curve, and the refusal rates on held-out harmful and benign
prompts after alignment, and before it unless ``align.eval.before`` is false.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import numpy as np
from lightning.fabric.plugins.environments import LightningEnvironment
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pact_lightning import build, defences
from pact_lightning.data.datamodule import PoisonMixDataModule
from pact_lightning.data.poison import poison_counts
from pact_lightning.errors import ConfigError
from pact_lightning.eval.scoring import with_interval
from pact_lightning.models.loading import attach_lora, load_model, weights_key, weights_source
from pact_lightning.objectives.sft import SFT
from pact_lightning.utils.fingerprint import digest
from pact_lightning.utils.io import atomic_dir, write_json
from pact_lightning.utils.once import build_once
from pact_lightning.utils.precision import resolve as resolve_precision
from pact_lightning.utils.progress import progress_bar
from pact_lightning.utils.strategies import local_device
from pact_lightning.utils.timing import stage

log = logging.getLogger(__name__)

REPORT = "alignment.json"


def defence_config(align: DictConfig) -> DictConfig | None:
    """The alignment-stage defence's config (``align/defence=<name>``), or None: the deprecated ``align.defense=<name>``
    is read as ``align/defence=<name>`` with its default settings, with a warning."""
    node, old = align.get("defence"), align.get("defense")
    if old is None:
        return node
    if node is not None:
        raise ConfigError(f"align.defense={old} (the deprecated spelling) and align/defence are both set; keep "
                          "align/defence and drop align.defense")
    from pact_lightning.app import compose_group_option

    defences.get(str(old), "alignment", "align.defense")
    _deprecated(str(old))
    return compose_group_option("align/defence", str(old), "align.defense")


@functools.cache
def _deprecated(name: str) -> None:
    log.warning("align.defense=%s is deprecated and will be removed in the next release: use align/defence=%s", name,
                name)


def defence_of(align: DictConfig) -> defences.AlignmentDefence | None:
    """The alignment-stage defence the recipe ``align`` trains with (its settings checked), or None."""
    node = defence_config(align)
    if node is None:
        return None
    defence = build.instantiate_defence(node)
    if not isinstance(defence, defences.AlignmentDefence):
        raise ConfigError(f"align.defence._target_={node._target_} is not an alignment-stage defence (a subclass of "
                          "pact_lightning.defences.AlignmentDefence); pick one with align/defence=<name>")
    return defence


def recipe_identity(align: DictConfig, model_cfg: DictConfig) -> dict[str, Any]:
    """What determines the aligned weights: the model's weights, the recipe (not ``enabled``, not ``eval``; the
    defence's name and settings) and the content of its training data (a regenerated data set makes a new aligned
    model), a defence's own data included."""
    raw = OmegaConf.to_container(align, resolve=True)
    recipe = {k: v for k, v in raw.items() if k not in ("enabled", "eval", "defence", "defense")}
    # what "auto" means here: a CPU and a GPU build are other models
    recipe["trainer"]["precision"] = resolve_precision(recipe["trainer"]["precision"])[0]
    sources = [align.data.harmful, align.data.benign]
    node = defence_config(align)
    if node is not None:
        settings = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}
        recipe["defence"] = {"name": defence_of(align).name, **settings}
        sources += [v for v in node.values() if OmegaConf.is_dict(v) and "_target_" in v]  # Booster's harmful data
    rows = [(e.prompt, e.response) for source in sources for e in instantiate(source).load()]
    return {"model": weights_key(model_cfg), "dtype": str(model_cfg.get("dtype")), "recipe": recipe,
            "data": digest(rows)}


def aligned_dir(align: DictConfig, model_cfg: DictConfig, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "aligned" / f"{model_cfg.name}-{digest(recipe_identity(align, model_cfg))}"


def aligned_config(model_cfg: DictConfig, directory: Path) -> DictConfig:
    """``model_cfg`` pointed at the merged checkpoint, with the pre-alignment model as its base."""
    pre = OmegaConf.to_container(model_cfg, resolve=True)
    return OmegaConf.create({**pre, "name": f"{model_cfg.name}_aligned", "pretrained": str(directory), "gguf": None,
                             "tiny": None, "needs_alignment": False, "aligned_by": str(directory),
                             "base": {**pre, "base": None}})


@contextmanager
def preserved_rng() -> Iterator[None]:
    """The stage seeds its own RNGs; the run that triggered it continues with its RNG state untouched, so a run that
    builds the aligned model and one that finds it cached train identically."""
    states = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


class LossHistory(L.Callback):
    """The training loss of every step (alignment.json records it; the tests check that it falls)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # the logged loss: the alignment loss, not what a defence's step differentiates (Booster's surrogate)
        self.losses.append(float(trainer.callback_metrics["train/loss"]))


def alignment_data(data: DictConfig, tokenizer, seed: int, batch_size: int | None = None,
                   max_length: int | None = None) -> PoisonMixDataModule:
    """The alignment mix of ``align.data`` (harmful prompts → refusals, benign prompts → helpful answers), in batches
    of ``batch_size`` (default ``data.batch_size``): the alignment stage trains on it, Lisa cycles through it."""
    return PoisonMixDataModule(benign=instantiate(data.benign), harmful=instantiate(data.harmful),
                               num_samples=int(data.num_samples), poison_ratio=float(data.harmful_fraction),
                               batch_size=int(batch_size or data.batch_size),
                               max_length=int(max_length or data.max_length), name="alignment").attach(tokenizer,
                                                                                                       seed=seed)


def train_adapter(a: DictConfig, model, tokenizer, accelerator: str = "auto") -> tuple[Any, list[float]]:
    """SFT of a fresh LoRA adapter on the refusal/helpful mix (the recipe ``a`` = ``align``), with the step of its
    defence when it has one; returns the policy (adapter still separate) and the per-step losses."""
    L.seed_everything(int(a.seed), verbose=False)
    defence = defence_of(a)
    policy = attach_lora(model, a.lora, key="align.lora.target_modules")
    data = alignment_data(a.data, tokenizer, seed=int(a.seed))
    module = build.module(policy, SFT(), None, a.optim,
                              step=defence.step(tokenizer, a) if defence is not None else None)
    num_benign, num_harmful = poison_counts(int(a.data.num_samples), float(a.data.harmful_fraction))
    # (the mix's "poison" side is the harmful→refusal half here)
    log.info("Alignment data: %d harmful prompts → refusals + %d benign prompts → helpful answers, %d epoch(s)",
             num_harmful, num_benign, int(a.trainer.max_epochs))
    history = LossHistory()
    # One process on this rank's own device, whatever launched it: under a multi-task SLURM job Lightning's SLURM
    # environment would refuse devices=1 (ntasks-per-node != devices); the build lock lets one rank build.
    device = local_device() if accelerator in ("gpu", "cuda", "auto") else torch.device("cpu")
    trainer = build.trainer(a.trainer, accelerator=device.type,
                                devices=[device.index] if device.type == "cuda" else 1,
                                plugins=[LightningEnvironment()],
                                callbacks=[history] + ([progress_bar("alignment")]
                                                       if a.trainer.get("enable_progress_bar", True) else []))
    trainer.fit(module, datamodule=data)
    log.info("alignment on %s (%s): %d steps", trainer.strategy.root_device, trainer.precision, trainer.global_step)
    # Lightning's teardown parks the module on the CPU: the evaluation that follows generates where it trained
    return policy.to(trainer.strategy.root_device), history.losses


def save_merged(policy, tokenizer, directory: Path) -> Path:
    """Merge the adapter into the weights (if not merged yet) and save an ordinary HF checkpoint (with the tokenizer
    and its chat template)."""
    merged = policy.merge_and_unload() if hasattr(policy, "merge_and_unload") else policy
    merged.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def evaluated_sets(eval_cfg: DictConfig) -> dict[str, DictConfig]:
    """The sets the stage measures: those that measure (``role: measure``, the default), and those that tune the recipe
    (``role: tune``) only when ``eval.dev`` is on (a recipe search)."""
    return {name: spec for name, spec in eval_cfg.sets.items()
            if spec.get("role", "measure") == "measure" or eval_cfg.get("dev", False)}


def refusal_rates(model, tokenizer, eval_cfg: DictConfig, out: Path, tag: str) -> dict[str, Any]:
    """Refusal rate (keyword judge, greedy) on every evaluated set (:func:`evaluated_sets`) in the main evaluator's
    units and keys: ``refusal_rate/<set>`` in percent with ``refusal_rate_ci_lo/<set>``, ``refusal_rate_ci_hi/<set>``
    (95% Wilson), ``num_refused/<set>`` of ``num_prompts/<set>`` in ``detail``, each set's role and size in ``sets``;
    the generations go to ``out``."""
    from pact_lightning.eval.generation import generate
    from pact_lightning.eval.judges import KeywordJudge

    judge = KeywordJudge()
    sets: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    rows = []
    for name, spec in evaluated_sets(eval_cfg).items():
        prompts = [e.prompt for e in instantiate(spec.source).load()][:eval_cfg.get("num_prompts")]
        responses = generate(model, tokenizer, prompts, max_new_tokens=int(spec.get("max_new_tokens")
                                                                            or eval_cfg.max_new_tokens),
                             batch_size=int(eval_cfg.batch_size), desc=f"alignment: {tag}, {name} prompts")
        refused = [judge.refused(r) for r in responses]
        sets[name] = {"role": spec.get("role", "measure"), "prompts": len(prompts)}
        detail |= with_interval("refusal_rate", f"/{name}", sum(refused), len(prompts)) | {
            f"num_refused/{name}": sum(refused), f"num_prompts/{name}": len(prompts)}
        rows += [{"kind": name, "prompt": p, "response": r, "refused": f}
                 for p, r, f in zip(prompts, responses, refused)]
    (out / f"generations_{tag}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                  encoding="utf-8")
    return {"sets": sets, "detail": detail}


def missed_targets(after: dict[str, Any], eval_cfg: DictConfig) -> list[str]:
    """The measuring sets whose refusal rate (percent) misses its ``min_refusal`` / ``max_refusal`` target (percent),
    in words (a tuning set's target guides a recipe search; it is not what the aligned model is judged by)."""
    missed = []
    for name, spec in eval_cfg.sets.items():
        rate = after["detail"].get(f"refusal_rate/{name}")
        if rate is None or after["sets"][name]["role"] != "measure":
            continue
        if spec.get("min_refusal") is not None and rate < spec.min_refusal:
            missed.append(f"{name}: refuses {rate:.0f}% (target >= {spec.min_refusal:g}%)")
        if spec.get("max_refusal") is not None and rate > spec.max_refusal:
            missed.append(f"{name}: refuses {rate:.0f}% (target <= {spec.max_refusal:g}%)")
    return missed


def build_aligned(align: DictConfig, model_cfg: DictConfig, target: Path, accelerator: str = "auto") -> dict[str, Any]:
    """Measure, align, measure, merge and save into ``target`` (atomically: a temporary directory renamed at the end)
    on ``accelerator``."""
    with atomic_dir(target, keep_existing=True) as tmp:
        with preserved_rng():
            model, tokenizer = load_model(model_cfg, lora=False)
            before = None
            if align.eval.before:  # the raw model's rates: fixed for a given model, so a repeated build may skip them
                with stage("eval_before"):
                    before = refusal_rates(model, tokenizer, align.eval, tmp, "before")
            with stage("fit"):
                policy, losses = train_adapter(align, model, tokenizer, accelerator)
            merged = policy.merge_and_unload()  # evaluate exactly what is saved, without the adapter's overhead
            with stage("eval_after"):
                after = refusal_rates(merged, tokenizer, align.eval, tmp, "after")
            save_merged(merged, tokenizer, tmp)
        report = {"model": weights_source(model_cfg), "aligned_dir": str(target), **recipe_identity(align, model_cfg),
                  "eval": OmegaConf.to_container(align.eval, resolve=True), "before": before, "after": after,
                  "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
                  "losses": losses}
        write_json(tmp / REPORT, report)
    return read_report(target)


def read_report(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / REPORT).read_text(encoding="utf-8"))


ROLE_WORDS = {"measure": "measures (nothing was trained or tuned on it)", "tune": "tunes the recipe (not a measure)"}


def rate_lines(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """One line per evaluation set, measuring sets first: its role, its refusal rate before → after (after only when
    the build skipped ``before``), with the count and 95% interval after."""
    names = sorted(after["sets"], key=lambda n: after["sets"][n]["role"] != "measure")
    lines = []
    for name in names:
        d, key = after["detail"], f"refusal_rate/{name}"
        was = f"{before['detail'][key]:.1f}% before → " if before and key in before["detail"] else ""
        lines.append(f"refusal rate, {name} prompts [{ROLE_WORDS[after['sets'][name]['role']]}]: {was}{d[key]:.1f}% "
                     f"after ({d[f'num_refused/{name}']}/{d[f'num_prompts/{name}']}, 95% CI "
                     f"{d[f'refusal_rate_ci_lo/{name}']:.1f}–{d[f'refusal_rate_ci_hi/{name}']:.1f}%)")
    return lines


def summary(report: dict[str, Any]) -> str:
    """The refusal rate of every evaluation set before → after, and the loss."""
    return "\n".join([f"aligned checkpoint: {report['aligned_dir']}", *rate_lines(report["before"], report["after"]),
                      f"alignment loss: {report['loss_first']:.3f} → {report['loss_last']:.3f} over "
                      f"{len(report['losses'])} steps"])


def ensure_aligned(align: DictConfig, model_cfg: DictConfig, cache_dir: str | Path,
                   accelerator: str = "auto") -> DictConfig:
    """The aligned model's config: built by the alignment stage (recipe ``align``) on first use, then reused from the
    cache; ``accelerator`` is the run's."""
    with stage("convert"):
        weights_source(model_cfg)  # a GGUF model is converted here, once, so that its cost shows as its own stage
    target = aligned_dir(align, model_cfg, cache_dir)
    with stage("align"):
        built = build_once(target, (target / REPORT).is_file,
                           lambda: build_aligned(align, model_cfg, target, accelerator))
    report = read_report(target)
    log.info("Alignment stage (%s):\n%s", "reused" if built is None else "built", summary(report))
    missed = missed_targets(report["after"], align.eval)
    if missed:
        log.warning("The aligned model misses its targets (%s): revise the align.* recipe (data mix, epochs, lr) or "
                    "the align.eval.sets targets", "; ".join(missed))
    return aligned_config(model_cfg, target)
