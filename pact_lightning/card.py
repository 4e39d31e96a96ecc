"""The model card of a run's ``final/`` (its README.md): the base model, the method and its settings, the aligned
reference and the evaluation, written with huggingface_hub's ModelCard (offline: nothing is fetched); and the opt-in
push of ``final/`` to the Hub (``hub.repo_id``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import ModelCard, ModelCardData
from omegaconf import DictConfig

from pact_lightning.errors import ArtifactError
from pact_lightning.record import HEADLINE, Evaluation, RunRecord, rate_with_interval

log = logging.getLogger(__name__)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

Fine-tuned with **{{ setting.method }}** by pact_lightning (PACT: docs/method.md) from the aligned model
`{{ reference }}`, which is also the reference of the objective and of the evaluation.

| setting | value |
|---|---|
{% for name, value in settings.items() %}| {{ name }} | {{ "–" if value is none else value }} |
{% endfor %}
## Evaluation

{% if metrics %}Judge: {{ judge }}.

| metric (%, 95% interval) | reference | final |
|---|---|---|
{% for name, ref, final in metrics %}| {{ name }} | {{ ref }} | {{ final }} |
{% endfor %}{% else %}Not evaluated (eval.after_fit=false): `python -m pact_lightning.evaluate checkpoint=<this directory>`.
{% endif %}"""


def model_card(results: RunRecord | Mapping[str, Any], model_cfg: DictConfig, adapter: bool) -> ModelCard:
    """The card of the run a record describes (its setting and paths; its evaluation blocks when it has them)."""
    record = RunRecord.of(results)
    setting = record.setting
    base = model_cfg.get("pretrained")  # a hub id or a directory; None for the tiny test model
    data = ModelCardData(base_model=base, library_name="peft" if adapter else "transformers",
                         tags=["pact_lightning", *setting.tags()])
    ref, final = record.reference or Evaluation(), record.final or Evaluation()
    metrics = [(m, rate_with_interval(ref, m), rate_with_interval(final, m))
               for m in HEADLINE if m in ref or m in final]
    return ModelCard.from_template(
        data, template_str=TEMPLATE, title=f"{setting.method} on {setting.task} ({setting.model})", setting=setting,
        settings={"base model": base or record.model_weights, "method": setting.method, "λ": setting.lam,
                  "k (safety tokens)": setting.k, "p (poison ratio)": setting.p, "n (samples)": setting.n,
                  "seed": setting.seed, "task": setting.task, "safety tokens": record.safety_tokens},
        reference=record.model_weights, judge=record.judge, metrics=metrics)


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
