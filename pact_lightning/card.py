"""The model card of a run's ``final/`` (its README.md): the base model, the method and its settings, the aligned
reference and the evaluation, written with huggingface_hub's ModelCard (offline: nothing is fetched); and the opt-in
push of ``final/`` to the Hub (``hub.repo_id``)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import ModelCard, ModelCardData
from omegaconf import DictConfig, OmegaConf

from pact_lightning.errors import ArtifactError
from pact_lightning.record import HEADLINE, Evaluation, RunRecord, rate_with_interval

log = logging.getLogger(__name__)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

Fine-tuned with **{{ setting.method }}** by pact_lightning (PACT: docs/method.md) from the aligned model
`{{ reference }}`, which is also the reference of the objective and of the evaluation.
{% if alignment %}
That model is `{{ base }}` aligned by pact_lightning's alignment stage (docs/method.md §5), recipe fingerprint
`{{ alignment.recipe }}` (alignment data digest `{{ alignment.data }}`): `python -m pact_lightning.align
model={{ alignment.preset }}` with the same recipe rebuilds it into `<cache>/aligned/{{ alignment.dir }}`.
{% endif %}
## Loading

```python
{{ snippet }}
```

| setting | value |
|---|---|
{% for name, value in settings.items() %}| {{ name }} | {{ "–" if value is none else value }} |
{% endfor %}
## Training hyperparameters

{% if hparams %}| hyperparameter | value |
|---|---|
{% for name, value in hparams.items() %}| {{ name }} | {{ "–" if value is none else value }} |
{% endfor %}{% else %}Not recorded.
{% endif %}
## Evaluation

{% if metrics %}Judge: {{ judge }}.

| metric (%, 95% interval) | reference | final |
|---|---|---|
{% for name, ref, final in metrics %}| {{ name }} | {{ ref }} | {{ final }} |
{% endfor %}{% else %}Not evaluated (eval.after_fit=false): `python -m pact_lightning.evaluate checkpoint=<this directory>`.
{% endif %}"""


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def hub_id(value: Any) -> str | None:
    """``value`` if it is a Hub repository id (user/name) rather than a local directory, else None."""
    if not isinstance(value, str) or not HUB_ID.fullmatch(value) or value.startswith((".", "~")):
        return None
    return None if Path(value).exists() else value


def portable(text: str | None) -> str | None:
    """``text`` with every absolute local path cut to its last part: a card is read on other machines (and the Hub)."""
    if text is None:
        return None
    return re.sub(r"(?<![\w.])/[^\s+:\"',]+", lambda m: Path(m.group()).name, str(text))


def pre_trained(model_cfg: DictConfig) -> tuple[str | None, str]:
    """The model the run's weights come from before any alignment stage of this project: its Hub id (None when it
    has none: a GGUF package, the tiny test model, a local directory) and how to name it."""
    cfg = model_cfg.base if model_cfg.get("aligned_by") and model_cfg.get("base") is not None else model_cfg
    hub = hub_id(cfg.get("pretrained"))
    if hub is not None:
        return hub, hub
    gguf = cfg.get("gguf")
    if gguf is not None and gguf.get("package"):
        return None, f"{Path(str(gguf.get('file', ''))).name} (GGUF, Python package {gguf.package})"
    if cfg.get("tiny") is not None:
        return None, "the tiny test model (random weights)"
    return None, portable(str(cfg.get("pretrained"))) or str(cfg.get("name"))


def alignment_recipe(model_cfg: DictConfig) -> dict[str, str] | None:
    """The fingerprint of the alignment stage's recipe that made the aligned model (the digest in its cache
    directory's name, ``<model>-<digest>``) and of its data (alignment.json), or None for a model this project did
    not align."""
    if not model_cfg.get("aligned_by"):
        return None
    directory = Path(str(model_cfg.aligned_by))
    report_path = directory / "alignment.json"
    data = json.loads(report_path.read_text(encoding="utf-8")).get("data") if report_path.is_file() else None
    preset = str(model_cfg.base.get("name")) if model_cfg.get("base") is not None else directory.name.rsplit("-", 1)[0]
    return {"recipe": directory.name.rsplit("-", 1)[-1], "data": str(data), "dir": directory.name, "preset": preset}


def loading_snippet(adapter: bool, start: str, aligned: dict[str, str] | None, repo: str) -> str:
    """Python that loads the run's model: the adapter on the model it was trained on, or the full weights."""
    if not adapter:
        return ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")')
    note = (f"  # the aligned model: python -m pact_lightning.align model={aligned['preset']} writes it to "
            f"<cache>/aligned/{aligned['dir']}" if aligned else "")
    return ("from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'base = AutoModelForCausalLM.from_pretrained("{start}"){note}\n'
            f'model = PeftModel.from_pretrained(base, "{repo}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")')


def hyperparameters(cfg: DictConfig, record: RunRecord) -> dict[str, Any]:
    """The training hyperparameters of a run's config, as the card lists them."""
    def get(key: str) -> Any:
        value = OmegaConf.select(cfg, key, default=None)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    objective = {k: v for k, v in (get("method.objective") or {}).items() if k != "_target_"}
    lora = get("model.lora")
    out = {"optimizer": str(get("optim.optimizer._target_")).rsplit(".", 1)[-1], "learning rate": get("optim.optimizer.lr"),
           "weight decay": get("optim.optimizer.weight_decay"),
           "schedule": str(get("optim.scheduler._target_")).rsplit(".", 1)[-1] if get("optim.scheduler") else None,
           "batch size": get("data.batch_size"), "gradient accumulation": get("trainer.accumulate_grad_batches"),
           "max length (tokens)": get("data.max_length"), "epochs": get("trainer.max_epochs"),
           "max steps": get("trainer.max_steps"), "steps trained": (record.train or {}).get("global_step"),
           "gradient clipping": get("trainer.gradient_clip_val"), "precision": (record.devices or {}).get("precision")
           or get("trainer.precision"), "seed": get("seed")}
    if lora:
        out |= {"LoRA r": lora.get("r"), "LoRA alpha": lora.get("alpha"), "LoRA dropout": lora.get("dropout"),
                "LoRA target modules": ", ".join(lora.get("target_modules") or [])}
    return out | {f"objective: {k}": v for k, v in objective.items()}


def model_card(results: RunRecord | Mapping[str, Any], model_cfg: DictConfig, adapter: bool,
               hparams: Mapping[str, Any] | None = None, repo_id: str | None = None) -> ModelCard:
    """The card of the run a record describes (its setting and paths; its evaluation blocks when it has them), with
    the training ``hparams`` (:func:`hyperparameters`) and loading code for ``repo_id`` (else this directory). No
    absolute local path goes in: ``base_model`` is the Hub id of the pre-trained model (for a model the alignment
    stage aligned, of the model before alignment, with the recipe's fingerprint beside it), or absent."""
    record = RunRecord.of(results)
    setting = record.setting
    base, base_name = pre_trained(model_cfg)
    aligned = alignment_recipe(model_cfg)
    extra = {"pact_alignment_recipe": aligned["recipe"]} if aligned else {}
    data = ModelCardData(base_model=base, library_name="peft" if adapter else "transformers",
                         tags=["pact_lightning", *setting.tags()], **extra)
    ref, final = record.reference or Evaluation(), record.final or Evaluation()
    metrics = [(m, rate_with_interval(ref, m), rate_with_interval(final, m))
               for m in HEADLINE if m in ref or m in final]
    reference = (f"{base_name}, aligned (recipe {aligned['recipe']})" if aligned
                 else portable(base or record.model_weights))
    start = aligned["dir"] if aligned else (base or portable(str(model_cfg.get("pretrained") or "<base model>")))
    return ModelCard.from_template(
        data, template_str=TEMPLATE, title=f"{setting.method} on {setting.task} ({setting.model})", setting=setting,
        settings={"base model": base_name, "alignment recipe": aligned["recipe"] if aligned else None,
                  "method": setting.method, "λ": setting.lam,
                  "k (safety tokens)": setting.k, "p (poison ratio)": setting.p, "n (samples)": setting.n,
                  "seed": setting.seed, "task": setting.task,
                  "safety tokens": Path(record.safety_tokens).name if record.safety_tokens else None},
        reference=reference, base=base_name, alignment=aligned, judge=record.judge, metrics=metrics,
        hparams=dict(hparams or {}), snippet=loading_snippet(adapter, start, aligned, repo_id or "<this directory>"))


def push(directory: Path, hub: DictConfig) -> None:
    """``directory`` (the adapter or weights and their card) to the Hub repository ``hub.repo_id``. Called once the
    run's results.json is written, so a failed push loses nothing; it fails the run, saying how to push by hand."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
        api.upload_folder(folder_path=str(directory), repo_id=hub.repo_id, commit_message="pact_lightning run")
    except Exception as err:  # offline, no token, no permission, network: the outputs are on disk, say how to push
        raise ArtifactError(f"hub.repo_id={hub.repo_id}: the push failed ({err}). The run's outputs are complete in "
                            f"{directory.parent}; push them with `hf upload {hub.repo_id} {directory}` (a token from "
                            "HF_TOKEN or `hf auth login`)") from err
    log.info("Pushed %s to https://huggingface.co/%s", directory, hub.repo_id)
