"""The pre-alignment weights that SafeLoRA and AsFT compare the aligned model with (docs/defence_methods.md)."""

from __future__ import annotations

from omegaconf import DictConfig

from pact_lightning.errors import ConfigError
from pact_lightning.models.loading import base_model_config, load_model
from pact_lightning.objectives.direction import Direction, alignment_directions


def pre_alignment_config(model_cfg: DictConfig, method: str) -> DictConfig:
    """The model config of the pre-alignment weights (``model.base``, or the model the alignment stage started from),
    which ``method`` needs; refused, naming the key to set, when the model has none."""
    try:
        return base_model_config(model_cfg)
    except ConfigError as err:
        raise ConfigError(f"{method} needs the pre-alignment weights W_base (V = W_aligned − W_base): {err}") from None


def load_directions(policy, model_cfg: DictConfig, method: str) -> list[Direction]:
    """The alignment directions of ``policy`` against the pre-alignment weights of ``model_cfg``, which ``method``
    needs."""
    base, _ = load_model(pre_alignment_config(model_cfg, method), lora=False, require_chat_template=False)
    try:
        return alignment_directions(policy, base)
    finally:
        del base
