"""The run's Lightning loggers, with W&B online only when it can be."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from hydra.utils import instantiate
from omegaconf import DictConfig

log = logging.getLogger(__name__)


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


def loggers(logger_cfg: DictConfig | None) -> list:
    """One logger per entry of ``logger`` (null entries skipped)."""
    out = []
    for name, spec in (logger_cfg or {}).items():
        if spec is None:
            continue
        if name == "wandb":
            offline = wandb_offline(spec.offline)
            os.environ["WANDB_MODE"] = "offline" if offline else "online"
            Path(spec.save_dir).mkdir(parents=True, exist_ok=True)
            out.append(instantiate(spec, offline=offline))
            if offline:
                log.info("W&B runs offline (no API key, no network, or WANDB_MODE=offline); upload later with: "
                         "wandb sync %s/wandb/offline-run-*", spec.save_dir)
        else:
            out.append(instantiate(spec))
    return out
