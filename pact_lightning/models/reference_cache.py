"""The reference cache: the frozen reference's safety-token numbers, computed once before training.

The reference is frozen and the training data fixed, so what an objective reads from the reference — the logits on
the k safety tokens at every response position in the full and the post-only context, the log-normaliser at the
objective's temperature (``include_rest_mass``), the target token's log-prob (tokenwise) — is the same in every epoch.
One pass over the training set computes it; training then looks rows up by ``batch["index"]`` and runs no reference
model at all (``reference.mode=cached``).

**Which weights.** The policy itself before its first optimiser step: with its LoRA adapter disabled, or, for full
fine-tuning, as loaded. So no second copy is loaded, not even for the build.

**When.** In :meth:`CachedReference.prepare`, called from ``PactModule.setup``: Lightning runs it after the DataModule's
setup, inside the DDP process group, and *before* it restores a checkpoint, so a resumed full fine-tuning run still
fingerprints (and, if needed, rebuilds from) the aligned weights. The build runs one batch at a time under no-grad and
the trainer's autocast context, on the device the trainer will train on, after the precision plugin's conversion of the
model (which Lightning itself applies only after setup: ``bf16-true``, DeepSpeed's ``32-true``) — the same weights,
dtype and autocast as the online reference (``bf16-mixed``: the cached and online reference agree within bf16
rounding).

**File.** ``<reference.cache_dir>/<model>-<key>.safetensors``, ``key`` = hash of :func:`fingerprint` (reference weights,
tokenizer, chat template, safety-token ids, data ledger and encoded tokens, max length, stored fields, temperature,
precision, the build's device type and autocast). Tensors: ``offsets`` [n+1] — the rows of example i are
``offsets[i]:offsets[i+1]``, one per response position in time order — and one ``[P, ...]`` tensor per stored field, in
the dtype the online reference would produce.
So a batch's rows, concatenated in batch order, are in exactly the (sample, time) order ``PolicyView`` flattens.
The metadata holds the fingerprint JSON; a file is only used when it matches. Any change of an input changes the key,
so a new file is built next to the old ones (a λ sweep shares one cache; stale files can be deleted at any time).
Written atomically: a killed build leaves no file, and two jobs building the same key write the same bytes.

**DDP.** Rank 0 fingerprints and broadcasts (key, hit, build id). On a miss every rank computes its shard (every
world-th example) into a part file, rank 0 merges the parts into the cache file, and after a barrier every rank loads
it — the build costs 1/world of a pass per rank and no rank holds a second model.

``kl_full`` cannot be cached: it needs the reference's full-vocabulary logits at every position (|V| numbers instead
of 2k), which is why :func:`check_cacheable` refuses it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
from lightning.pytorch.plugins.precision import Precision
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor, nn

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.models.loading import weights_digest
from pact_lightning.models.reference import ReferenceProvider, aligned_weights, reference_view
from pact_lightning.objectives.base import Objective, PolicyView, ReferenceView, response_mask
from pact_lightning.utils.fingerprint import digest, numerics
from pact_lightning.utils.io import atomic_path
from pact_lightning.utils.progress import iterate

log = logging.getLogger(__name__)

FORMAT = "pact_lightning.reference_cache/1"


def check_cacheable(objective: Objective) -> None:
    if objective.needs_alignment_data:
        raise ConfigError(f"reference.mode=cached looks the reference up by the training example's index, but "
                          f"{type(objective).__name__} trains some steps on alignment data it does not index; use "
                          "reference.mode=adapter_disabled (LoRA) or frozen_copy")
    if "logits" in objective.reference_fields:
        raise ConfigError(f"reference.mode=cached stores only the reference's safety-token slice, but {type(objective).__name__} "
                          "needs its full-vocabulary logits at every position; use reference.mode=adapter_disabled "
                          "(LoRA) or frozen_copy")


class EncodedData(Protocol):
    """What the cache reads of the training data (``PoisonMixDataModule`` provides it once set up)."""

    num_samples: int
    batch_size: int

    def fingerprint(self) -> dict[str, Any]: ...

    def batches(self, indices: list[int], batch_size: int) -> Iterator[dict[str, Tensor]]: ...


# ------------------------------------------------------------------------------------------------ fingerprint

def fingerprint(policy: nn.Module, objective: Objective, data: EncodedData, precision: str = "32-true",
                computes: dict | None = None) -> dict:
    """Everything the cached numbers depend on. ``temperature`` only matters (and only enters) when a log-normaliser
    is stored, so a temperature sweep without ``include_rest_mass`` shares one cache. ``computes``: the build's device
    type and autocast (``utils.fingerprint.numerics``); None = the policy's device and the autocast in force now."""
    fields = sorted(objective.reference_fields)
    return {"format": FORMAT, "reference_weights": weights_digest(policy), **data.fingerprint(),
            "safety_ids": objective.safety_ids.tolist(), "fields": fields,
            "temperature": float(objective.temperature) if {"lse_full", "lse_post"} & set(fields) else None,
            "precision": str(precision), **(computes or numerics(next(policy.parameters()).device))}


# ------------------------------------------------------------------------------------------------ build / store

@torch.no_grad()
def compute_rows(model: nn.Module, data: EncodedData, indices: list[int], objective: Objective, batch_size: int,
                 device: torch.device, forward_context=nullcontext, progress: bool = False) -> dict[str, Tensor]:
    """The reference rows of the examples ``indices`` (one forward per context per batch, in index order):
    ``index`` [m], ``counts`` [m] (response positions per example) and one ``[rows, ...]`` tensor per field."""
    fields, ids = objective.reference_fields, objective.safety_ids.to(device)
    out: dict[str, list[Tensor]] = {"index": [], "counts": []}
    for batch in iterate(data.batches(indices, batch_size), "reference cache", unit="batch",
                         total=math.ceil(len(indices) / batch_size), disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        with forward_context():
            view = reference_view(model, batch, fields, ids, objective.temperature)
        out["index"].append(batch["index"].cpu())
        out["counts"].append(response_mask(batch["labels"]).sum(1).cpu())
        for name in fields:
            out.setdefault(name, []).append(getattr(view, name).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def assemble(parts: list[dict[str, Tensor]], num_examples: int) -> dict[str, Tensor]:
    """Merge shards (any order of examples) into the cache layout: ``offsets`` and the fields in index order."""
    index = torch.cat([p["index"] for p in parts])
    counts = torch.cat([p["counts"] for p in parts])
    if sorted(index.tolist()) != list(range(num_examples)):
        raise RuntimeError(f"reference cache shards cover {index.numel()} examples, not each of the {num_examples} once")
    order = torch.argsort(index)
    starts = torch.cumsum(counts, 0) - counts  # first row of each example within the concatenated shards
    rows = torch.cat([torch.arange(s, s + c) for s, c in zip(starts[order].tolist(), counts[order].tolist())])
    fields = {name: torch.cat([p[name] for p in parts])[rows].contiguous()
              for name in parts[0] if name not in ("index", "counts")}
    offsets = torch.zeros(num_examples + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts[order], 0)
    for name, value in fields.items():
        if value.shape[0] != int(offsets[-1]):
            raise RuntimeError(f"reference cache field {name} has {value.shape[0]} rows for {int(offsets[-1])} "
                               "response positions; the full and post-only encodings disagree in response length")
    return {"offsets": offsets, **fields}


def save_cache(path: Path, tensors: dict[str, Tensor], fp: dict) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "fingerprint": json.dumps(fp, sort_keys=True)})


def load_cache(path: Path, fp: dict) -> dict[str, Tensor] | None:
    """The cache at ``path`` if it exists and was built for exactly ``fp``; None when there is none (or another build's
    file sits at this path). A file that exists but cannot be read is refused: it is derived data, so the error says to
    delete it, and nothing else is touched."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT or json.loads(meta.get("fingerprint", "null")) != json.loads(json.dumps(fp)):
            log.warning("Reference cache %s was built for other inputs; rebuilding it", path)
            return None
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"reference cache {path} is truncated or corrupt ({err}); it is derived data: delete it "
                            f"(rm '{path}') and run again to rebuild it, or train with reference.mode=adapter_disabled "
                            "(LoRA) or frozen_copy") from err


# ------------------------------------------------------------------------------------------------ the provider

class _SingleProcess:
    """What :meth:`CachedReference.prepare` needs from a Lightning strategy, for use without a Trainer."""

    global_rank, world_size = 0, 1
    precision_plugin = Precision()

    def __init__(self, device: torch.device) -> None:
        self.root_device = device

    def barrier(self, name: str | None = None) -> None:
        pass

    def broadcast(self, obj, src: int = 0):
        return obj


class CachedReference(ReferenceProvider):
    """Looks the reference's rows up by ``batch["index"]``; holds no model (and no parameters or buffers).

    ``data`` is the training data (the run's DataModule); it is read in :meth:`prepare`, once it is set up."""

    mode = "cached"

    def __init__(self, cache_dir: str | Path, data: EncodedData, name: str = "reference",
                 build_batch_size: int | None = None) -> None:
        super().__init__()
        self.cache_dir, self.data, self.name, self.build_batch_size = Path(cache_dir), data, name, build_batch_size
        self.path: Path | None = None
        self.build_seconds: float | None = None  # None when an existing cache was reused
        self.offsets: list[int] | None = None
        self.tensors: dict[str, Tensor] = {}  # plain CPU tensors, deliberately not buffers: never moved or saved

    def prepare(self, policy: nn.Module, objective: Objective, strategy=None) -> None:
        if self.offsets is not None:
            return
        check_cacheable(objective)
        strategy = strategy or _SingleProcess(next(policy.parameters()).device)
        # the dtypes the strategy will train in: Lightning's precision plugin converts the module only after this hook
        # (bf16-true; DeepSpeed's 32-true, which makes a bf16 model float32); converting it here changes nothing later
        strategy.precision_plugin.convert_module(policy)
        fp = key = hit = build_id = error = None
        if strategy.global_rank == 0:
            with strategy.precision_plugin.forward_context():  # the device and autocast _build computes under
                computes = numerics(strategy.root_device)
            fp = fingerprint(policy, objective, self.data, getattr(strategy.precision_plugin, "precision", "32-true"),
                             computes)
            key, build_id = digest(fp), uuid.uuid4().hex[:8]
            try:
                hit = load_cache(self._path(key), fp) is not None
            except ArtifactError as err:  # raised on every rank below: the others wait in the broadcast
                error = str(err)
        fp, key, hit, build_id, error = strategy.broadcast((fp, key, hit, build_id, error), src=0)
        if error is not None:
            raise ArtifactError(error)
        self.path = self._path(key)
        if not hit:
            self._build(policy, objective, strategy, fp, build_id)
        tensors = load_cache(self.path, fp)
        if tensors is None:
            raise RuntimeError(f"reference cache {self.path} vanished or changed right after it was built")
        self.offsets = tensors.pop("offsets").tolist()
        self.tensors = tensors
        if len(self.offsets) != self.data.num_samples + 1:
            raise RuntimeError(f"reference cache {self.path} has {len(self.offsets) - 1} examples for a dataset of "
                               f"{self.data.num_samples}")
        log.info("Reference cache %s (%s): %d examples, %d response positions, %.1f MB", "reused" if hit else "built",
                 self.path, len(self.offsets) - 1, self.offsets[-1], self.path.stat().st_size / 1e6)

    def _build(self, policy: nn.Module, objective: Objective, strategy, fp: dict, build_id: str) -> None:
        rank, world, n = strategy.global_rank, strategy.world_size, self.data.num_samples
        batch_size = self.build_batch_size or max(1, self.data.batch_size // world)
        start = time.perf_counter()
        policy.to(strategy.root_device)  # the trainer moves it there next anyway
        with aligned_weights(policy) as model:
            part = compute_rows(model, self.data, list(range(rank, n, world)), objective, batch_size,
                                strategy.root_device, strategy.precision_plugin.forward_context, progress=rank == 0)
        if world == 1:
            save_cache(self.path, assemble([part], n), fp)
        else:
            build_dir = self.cache_dir / f".build-{build_id}"
            with atomic_path(build_dir / f"part-{rank}.safetensors") as tmp:
                save_file(part, str(tmp))
            strategy.barrier("reference_cache_parts")
            if rank == 0:
                parts = [load_file(str(build_dir / f"part-{r}.safetensors")) for r in range(world)]
                save_cache(self.path, assemble(parts, n), fp)
                shutil.rmtree(build_dir, ignore_errors=True)
            strategy.barrier("reference_cache_merged")
        self.build_seconds = time.perf_counter() - start
        log.info("Reference cache: built %s in %.1f s (rank %d of %d, batch %d); reference cache on %s", self.path,
                 self.build_seconds, rank, world, batch_size, strategy.root_device)

    def _path(self, key: str) -> Path:
        return self.cache_dir / f"{self.name}-{key}.safetensors"

    def forward(self, batch: dict[str, Tensor], policy: PolicyView, objective: Objective) -> ReferenceView:
        if self.offsets is None:
            raise RuntimeError("the reference cache is not loaded; PactModule.setup calls prepare() before training")
        rows = torch.cat([torch.arange(self.offsets[i], self.offsets[i + 1]) for i in batch["index"].tolist()])
        if rows.numel() != policy.num_tokens:
            raise RuntimeError(f"the reference cache {self.path} has {rows.numel()} response positions for this batch's "
                               f"examples but the batch has {policy.num_tokens}; the data changed without changing its "
                               "fingerprint — delete the cache file")
        device = policy.lse.device
        return ReferenceView(**{name: self.tensors[name][rows].to(device, non_blocking=True)
                                for name in objective.reference_fields})
