"""Checkpoint IO: which checkpoint a run resumes from, and writing checkpoints so that a kill never leaves a half one."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.utils.io import atomic_path


def resolve_ckpt_path(path: str | None, output_dir: str | Path) -> str | None:
    """``ckpt_path`` as a checked path: ``last`` is ``<output_dir>/checkpoints/last.ckpt``; a missing, truncated or
    damaged checkpoint fails here, before any model is loaded."""
    if path is None:
        return None
    if path == "last":
        path = Path(output_dir) / "checkpoints" / "last.ckpt"
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
