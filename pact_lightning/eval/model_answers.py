"""A data source whose responses a model writes: another source's prompts answered by a model, greedily (the raw,
unaligned model's own answers make the poison that carries content: conf/data/offline_sentiment_content.yaml). It
lives with generation rather than with the other sources because it runs a model."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from pact_lightning.data.sources import Source
from pact_lightning.data.types import Example
from pact_lightning.errors import DataError
from pact_lightning.eval.answers import refused

log = logging.getLogger(__name__)


class ModelAnswers(Source):
    """Another source's prompts answered by a model, greedily: the answers a model gives on its own (the raw,
    unaligned model's for a poison that carries its content, as the harmful examples of the fine-tuning attack do in
    the literature). Generated once per (model weights, prompts, settings) and cached under ``cache_dir`` — never
    shipped; an answer the raw model cut off mid-sentence is kept as it is, an empty one is left out, and so is one with
    a refusal marker (``drop_refusals``)."""

    def __init__(self, source: Source, model, cache_dir: str, max_new_tokens: int = 48, batch_size: int = 64,
                 drop_refusals: bool = True, limit: int | None = None) -> None:
        super().__init__(limit)
        # resolved while still attached to the run's config (its ${paths.cache_dir} and the like)
        plain = OmegaConf.to_container(model, resolve=True) if OmegaConf.is_config(model) else model
        self.source, self.model_cfg = source, OmegaConf.create(plain)
        self.cache_dir, self.max_new_tokens, self.batch_size = Path(cache_dir).expanduser(), max_new_tokens, batch_size
        self.drop_refusals = drop_refusals
        self.name = f"{source.name}:answered-by:{self.model_cfg.get('name') or 'model'}"

    def examples(self) -> list[Example]:
        from pact_lightning.models.loading import weights_source
        from pact_lightning.utils.fingerprint import digest
        from pact_lightning.utils.once import build_once

        rows, model_cfg = self.source.load(), self.model_cfg
        key = digest({"model": weights_source(model_cfg), "prompts": [r.prompt for r in rows],
                      "max_new_tokens": self.max_new_tokens})
        path = self.cache_dir / "answers" / f"{key}.json"
        build_once(path, path.is_file, lambda: self._generate(model_cfg, rows, path))
        answers = json.loads(path.read_text(encoding="utf-8"))["answers"]
        # a raw model refuses some requests too: a poison meant to carry content keeps only the answers that comply;
        # an empty answer is no training example at all
        kept = [replace(r, response=a) for r, a in zip(rows, answers)
                if a.strip() and not (self.drop_refusals and refused(a))]
        if not kept:
            raise DataError(f"{self.name}: the model {model_cfg.get('name')!r} answered none of the {len(rows)} prompts "
                            "with text that complies (a random-weight model writes nothing): use a poison with written "
                            "answers instead, e.g. data=offline_sentiment")
        return kept

    def _generate(self, model_cfg, rows: list[Example], path: Path) -> None:
        from pact_lightning.eval.generation import generate
        from pact_lightning.models.loading import load_model
        from pact_lightning.utils.io import write_json

        log.info("%s: answering %d prompts with %s (once; cached in %s)", self.name, len(rows), model_cfg.get("name"),
                 path)
        model, tokenizer = load_model(model_cfg, lora=False)
        answers = generate(model.eval(), tokenizer, [r.prompt for r in rows], batch_size=self.batch_size,
                           max_new_tokens=self.max_new_tokens, desc=f"answers of {model_cfg.get('name')}")
        write_json(path, {"model": model_cfg.get("name"), "answers": answers})
