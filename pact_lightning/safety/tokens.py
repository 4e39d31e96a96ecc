"""The safety-token artifact: the candidate tokens of the selection step and the set S a run trains with.

File format (one ``.safetensors`` file, written atomically):

* tensors ``token_ids`` (int64), ``m`` and ``d`` (float32), all of length k_max, sorted by m descending —
  m = mean aligned-model probability on refusal responses, d = mean (aligned − base) probability (or the
  ``pref_logratio`` score), as defined in docs/method.md §2;
* string metadata: ``format`` (= ``FORMAT``), ``tokens`` (JSON list of the decoded tokens), ``tokenizer_fingerprint``,
  ``vocab_size``, ``aligned_model``, ``base_model``, ``settings`` (JSON of the selection settings) and, when it was
  selected here, ``aligned_weights`` (a digest of the aligned model's weights: a run on another model is warned).

A run picks its k (``method.num_safety_tokens``) as the first k candidates and recomputes the weights within that S:
v = z-score of d over S, divided by its L2 norm (``weights_from_scores``). So one artifact serves a sweep over k.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.utils.fingerprint import tokenizer_fingerprint
from pact_lightning.utils.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "pact_lightning.safety_tokens/1"


def weights_from_scores(d: Tensor) -> Tensor:
    """v = z-score of d within S, L2-normalised (the authors' v_dir restricted to S).

    When every v ≤ 0 (d constant over S, e.g. base and aligned models coincide), ``max(v, 0)`` would be all zero and
    the PACT target undefined; the weights then fall back to uniform with a warning.
    """
    d = d.double()
    z = (d - d.mean()) / (d.std() + 1e-6) if d.numel() > 1 else torch.zeros_like(d)
    norm = z.norm()
    v = z / norm if norm > 0 else z
    if not (v > 0).any():
        log.warning("All %d safety-token weights are <= 0 (d is constant over S: are the aligned and base models the "
                    "same?); falling back to uniform weights.", d.numel())
        v = torch.full_like(d, d.numel() ** -0.5)
    return v.float()


@dataclass
class SafetyTokens:
    """The set S a run uses: ids, weights v and the decoded strings (for logs)."""

    ids: Tensor  # [k] int64
    weights: Tensor  # [k] float32, v (may be negative; objectives clamp)
    tokens: list[str]
    m: Tensor
    d: Tensor
    path: str | None = None

    @property
    def k(self) -> int:
        return int(self.ids.numel())


def save_artifact(path: str | Path, token_ids: Tensor, m: Tensor, d: Tensor, tokens: list[str], tokenizer,
                  aligned_model: str, base_model: str, settings: dict, aligned_weights: str | None = None) -> Path:
    """Write the artifact atomically (sorted by m descending); ``aligned_weights`` is the aligned model's
    :func:`~pact_lightning.models.loading.weights_digest`."""
    order = torch.argsort(m, descending=True)
    metadata = {"format": FORMAT, "tokens": json.dumps([tokens[i] for i in order.tolist()], ensure_ascii=False),
                "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), "vocab_size": str(len(tokenizer)),
                "aligned_model": aligned_model, "base_model": base_model,
                "settings": json.dumps(settings, sort_keys=True, default=str)}
    if aligned_weights is not None:
        metadata["aligned_weights"] = aligned_weights
    tensors = {"token_ids": token_ids[order].long().contiguous(), "m": m[order].float().contiguous(),
               "d": d[order].float().contiguous()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _remedy(path: Path, cached: bool) -> str:
    """What to do about an unusable artifact: one this project cached is derived data (delete and rebuild); a file the
    user named is never to be deleted on our advice."""
    if cached:
        return f"it is derived data in the cache: delete it (rm '{path}') and run again to rebuild it"
    return ("method.safety_tokens must name an artifact written by `python -m pact_lightning.safety_tokens` (e.g. its "
            "out= copy), or be null to build one; this file is left as it is")


def read_metadata(path: str | Path, cached: bool = False) -> dict[str, str]:
    """The artifact's metadata; ``cached`` says the project built the file (it shapes the advice when it is unusable)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ArtifactError(f"safety-token artifact {str(path)!r} {what}; build one with "
                            "`python -m pact_lightning.safety_tokens` or leave method.safety_tokens unset")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{path}: not a readable safety-token artifact ({err}): truncated, corrupt or another kind "
                            f"of file; {_remedy(path, cached)}") from None
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: metadata field 'format' is {meta.get('format')!r}, expected {FORMAT!r}, so it is not "
                            f"a safety-token artifact of this version; {_remedy(path, cached)}")
    return meta


def load_safety_tokens(path: str | Path, k: int, tokenizer=None, cached: bool = False,
                       aligned_weights: str | None = None) -> SafetyTokens:
    """The top-k candidates of an artifact as a :class:`SafetyTokens`, checked against ``tokenizer``; when
    ``aligned_weights`` (the run's :func:`~pact_lightning.models.loading.weights_digest`) differs from the one the
    artifact was selected on, a warning says so (same tokenizer, another model). ``cached``: see :func:`read_metadata`."""
    meta = read_metadata(path, cached)
    try:
        tensors = load_file(str(path))
        ids, m, d = tensors["token_ids"], tensors["m"], tensors["d"]
        tokens = json.loads(meta["tokens"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as err:
        raise ArtifactError(f"{path}: safety-token artifact is corrupt ({type(err).__name__}: {err}); "
                            f"{_remedy(Path(path), cached)}") from None
    if not (ids.numel() == m.numel() == d.numel() == len(tokens)):
        raise ArtifactError(f"{path}: fields token_ids/m/d/tokens have different lengths, so the file is corrupt; "
                            f"{_remedy(Path(path), cached)}")
    if not (torch.isfinite(m).all() and torch.isfinite(d).all()):
        bad = int((~torch.isfinite(m) | ~torch.isfinite(d)).nonzero()[0])
        raise ArtifactError(f"{path}: field m or d of candidate {bad} (token id {int(ids[bad])}) is not finite, so the "
                            f"file is corrupt or was edited; {_remedy(Path(path), cached)}")
    if ids.unique().numel() != ids.numel():
        seen: set[int] = set()
        dup = next(i for i in ids.tolist() if i in seen or seen.add(i))
        raise ArtifactError(f"{path}: field token_ids lists token id {dup} more than once, so the file is corrupt or "
                            f"was edited; {_remedy(Path(path), cached)}")
    if ids.numel() and int(ids.min()) < 0:
        raise ArtifactError(f"{path}: field token_ids holds the negative id {int(ids.min())}; "
                            f"{_remedy(Path(path), cached)}")
    recorded = meta.get("aligned_weights")
    if aligned_weights is not None and recorded is not None and recorded != aligned_weights:
        log.warning("%s was selected on another model (aligned weights %s; this run's are %s, aligned model of the "
                    "artifact: %s): its tokens and weights describe that model's refusals, not this one's. Leave "
                    "method.safety_tokens unset to select them for this model", path, recorded, aligned_weights,
                    meta.get("aligned_model"))
    if tokenizer is not None:
        fp = tokenizer_fingerprint(tokenizer)
        if meta.get("tokenizer_fingerprint") != fp:
            raise ArtifactError(
                f"{path}: made with another tokenizer (field tokenizer_fingerprint={meta.get('tokenizer_fingerprint')}, "
                f"this model's tokenizer is {fp}; aligned model of the artifact: {meta.get('aligned_model')}). Token ids "
                "would point at different tokens: rebuild the artifact for this model or pass the matching one")
        if int(ids.max()) >= len(tokenizer):
            raise ArtifactError(f"{path}: token id {int(ids.max())} is outside this tokenizer's vocabulary")
    if not 1 <= k <= ids.numel():
        raise ConfigError(f"method.num_safety_tokens={k} but the artifact {path} has {ids.numel()} candidates; pick "
                          f"k in [1, {ids.numel()}] or rebuild the artifact with a larger k_max")
    return SafetyTokens(ids=ids[:k].clone(), weights=weights_from_scores(d[:k]), tokens=tokens[:k], m=m[:k].clone(),
                        d=d[:k].clone(), path=str(path))
