"""Short content hashes: the keys of every cache (aligned checkpoints, safety tokens, reference caches, evaluations)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def digest(obj: Any) -> str:
    """16 hex characters of the SHA-256 of ``obj`` as canonical JSON (sorted keys, UTF-8, ``str`` for other types)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the token ↔ id mapping: two tokenizers with the same fingerprint give the same token the same id."""
    return digest(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]))


def numerics(device) -> dict[str, str | None]:
    """How a model computes beyond its weights and dtype, on ``device`` in the current context: the device type (CPU
    and CUDA kernels round differently) and the autocast dtype in force there (None without autocast). Every cache of
    numbers a model computed keys on it, so a CPU or float32 result is never reused by a GPU or bf16-autocast run."""
    import torch

    kind = torch.device(device).type
    autocast = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    return {"device": kind, "autocast": None if autocast is None else str(autocast)}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (streamed): what a resume compares its inputs by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
