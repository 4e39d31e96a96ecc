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


def wandb_credentials(host: str) -> bool:
    """Whether wandb's own lookup finds a key for ``host``: WANDB_API_KEY (or an identity-token file), or the
    ~/.netrc entry `wandb login` writes ($NETRC if set), read by wandb's own netrc reader. (Not through
    ``wandb.setup()``: that would fix wandb's settings before the run decides on online or offline.)"""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib import wbauth

        return bool(wbauth.read_netrc_auth(host=host))
    except Exception as err:  # noqa: BLE001 - an unreadable netrc means: no usable key
        log.info("W&B: no credentials found (%s)", err)
        return False


def wandb_offline(requested: bool | None) -> bool:
    """Run W&B offline unless wandb finds a key and the W&B host answers within 3 s (explicit WANDB_MODE/``offline``
    win)."""
    if requested is not None:
        return bool(requested)
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    if not wandb_credentials(host):
        return True
    url = urlsplit(host)
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
            wandb_logger = instantiate(spec, offline=offline)
            wandb_logger._wandb_init.pop("anonymous", None)  # Lightning passes anonymous=None; wandb warns it is gone
            out.append(wandb_logger)
            if offline:
                log.info("W&B runs offline (no credentials, no network, or WANDB_MODE=offline); upload later with: "
                         "wandb sync %s/wandb/offline-run-*", spec.save_dir)
        else:
            out.append(instantiate(spec))
    return out
