"""Short content hashes: the keys of every cache (aligned checkpoints, safety tokens, reference caches, evaluations)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(obj: Any) -> str:
    """16 hex characters of the SHA-256 of ``obj`` as canonical JSON (sorted keys, UTF-8, ``str`` for other types)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the token ↔ id mapping: two tokenizers with the same fingerprint give the same token the same id."""
    return digest(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]))
