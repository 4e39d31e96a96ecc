"""Shared fixtures: one model cache for the whole session, Hydra composition, the tiny model's tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Converted checkpoints and artifacts are shared across tests (and with the user's runs): the SmolLM2 GGUF is
# dequantised once per machine, not once per test.
os.environ.setdefault("PACT_CACHE", str(Path.home() / ".cache" / "pact_lightning"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "pact_lightning" / "conf"


def compose(config_name: str = "train", overrides: list[str] | None = None, output_dir: str | Path | None = None):
    """Compose a config the way the Hydra app does (HydraConfig set, so ${hydra:...} resolves)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from pact_lightning.objectives.settings import register_schemas

    register_schemas()  # what importing pact_lightning.app does for the apps
    overrides = list(overrides or [])
    if output_dir is not None:
        overrides.append(f"hydra.run.dir={output_dir}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from omegaconf import OmegaConf

    from pact_lightning.models.loading import load_tokenizer

    cfg = OmegaConf.load(CONF / "model" / "tiny.yaml")
    cfg.tiny.tokenizer.cache_dir = os.environ["PACT_CACHE"]
    return load_tokenizer(cfg)
