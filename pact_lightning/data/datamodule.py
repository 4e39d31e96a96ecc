"""The LightningDataModule: poison mix → chat encoding → padded batches with the post-only inputs PACT needs."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pact_lightning.data.chat import IGNORE_INDEX, ChatEncoder, Encoded
from pact_lightning.data.poison import MixedExample, ledger, mix
from pact_lightning.data.sources import normalize_prompt
from pact_lightning.errors import ConfigError, DataError
from pact_lightning.utils.fingerprint import digest, tokenizer_fingerprint
from pact_lightning.utils.io import write_json
from pact_lightning.utils.tensors import pad_right, padded_batch

log = logging.getLogger(__name__)


class EncodedDataset(Dataset):
    def __init__(self, encoded: list[Encoded], mixed: list[MixedExample]) -> None:
        self.encoded, self.mixed = encoded, mixed

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict:
        e = self.encoded[index]
        return {"index": index, "is_poison": self.mixed[index].kind == "poison", "input_ids": e.input_ids,
                "labels": e.labels, "post_input_ids": e.post_input_ids, "post_labels": e.post_labels}


class Collator:
    """Right-pads a list of encoded examples into the batch dict every objective and reference provider reads."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"index": torch.tensor([i["index"] for i in items]),
                 "is_poison": torch.tensor([i["is_poison"] for i in items])}
        for prefix in ("", "post_"):
            ids, mask = padded_batch([i[f"{prefix}input_ids"] for i in items], self.pad_token_id)
            batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"] = ids, mask
            batch[f"{prefix}labels"] = pad_right([i[f"{prefix}labels"] for i in items], IGNORE_INDEX)
        return batch


class ResumableLoader(DataLoader):
    """A DataLoader that resumes mid-epoch: Lightning stores its ``state_dict`` (the sampler's epoch and how many
    batches of that epoch were handed out) in every checkpoint and hands it back on resume; the restored loader then
    sets the sampler to that epoch and skips the batches already trained on, so the data order continues exactly.

    Lightning does not prefetch from a loader with a known length, so "handed out" is "trained on" when a checkpoint
    is written at the end of a training batch.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.position = 0  # batches of the current epoch handed out
        self.resume_state: dict | None = None

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.resume_state = state

    def __iter__(self):
        # A generator: the skip is decided at the first batch, after Lightning has set the sampler's epoch (a
        # checkpoint written at the end of an epoch resumes in the next epoch, which skips nothing).
        state, self.resume_state = self.resume_state, None
        skip = state["position"] if state is not None and state["epoch"] == self.sampler.epoch else 0
        self.position = skip
        for batch in itertools.islice(super().__iter__(), skip, None):
            self.position += 1
            yield batch


class PoisonMixDataModule(L.LightningDataModule):
    """Benign task data mixed with harmful "poison" data at ratio ``poison_ratio`` (n = ``num_samples``).

    ``batch_size`` is the global batch size; each of the world's ranks gets ``batch_size / world_size``. The training
    entry point calls :meth:`attach` with the tokenizer, seed, run directory and the harmful evaluation prompts (which
    the poison must not contain) before fitting.
    """

    def __init__(self, benign, harmful, num_samples: int = 200, poison_ratio: float = 0.1, batch_size: int = 8,
                 max_length: int = 256, min_response_tokens: int = 1, num_workers: int = 0, shuffle: bool = True,
                 drop_last: bool = True, name: str = "custom", task: str | None = None) -> None:
        super().__init__()
        self.name, self.task = name, task
        self.benign, self.harmful = benign, harmful
        self.num_samples, self.poison_ratio = num_samples, poison_ratio
        self.batch_size, self.max_length, self.min_response_tokens = batch_size, max_length, min_response_tokens
        self.num_workers, self.shuffle, self.drop_last = num_workers, shuffle, drop_last
        self.tokenizer, self.seed, self.output_dir, self.eval_prompts = None, 0, None, []
        self.dataset: EncodedDataset | None = None
        self.ledger: dict | None = None  # poison_ledger.json, drawn at setup

    def attach(self, tokenizer, seed: int = 0, output_dir: str | Path | None = None,
               eval_prompts: list[str] | None = None) -> PoisonMixDataModule:
        self.tokenizer, self.seed = tokenizer, seed
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.eval_prompts = list(eval_prompts or [])
        return self

    def build_mix(self) -> list[MixedExample]:
        """Load the sources and draw the mix (no tokenizer needed): what ``poison_ledger.json`` records."""
        benign = self.benign.load() if self.poison_ratio < 1 else []
        harmful = self.harmful.load() if self.poison_ratio > 0 else []
        mixed = mix(benign, harmful, self.num_samples, self.poison_ratio, self.seed,
                    benign_name=f"data.benign ({getattr(self.benign, 'name', type(self.benign).__name__)})",
                    harmful_name=f"data.harmful ({getattr(self.harmful, 'name', type(self.harmful).__name__)})")
        self._check_disjoint(mixed)
        return mixed

    def _check_disjoint(self, mixed: list[MixedExample]) -> None:
        held_out = {normalize_prompt(p) for p in self.eval_prompts}
        leaked = [m.example for m in mixed if m.kind == "poison" and normalize_prompt(m.example.prompt) in held_out]
        if leaked:
            first = leaked[0]
            raise DataError(f"{len(leaked)} poison prompt(s) also appear in the safety-evaluation prompts (first: "
                            f"{first.source} row {first.row}: {first.prompt[:80]!r}); the harmful score would be "
                            "measured on training data — use a disjoint harmful split for data.harmful or eval")

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if self.tokenizer is None:
            raise RuntimeError("PoisonMixDataModule.attach(tokenizer, ...) must be called before setup()")
        mixed = self.build_mix()
        encoder = ChatEncoder(self.tokenizer, self.max_length, self.min_response_tokens)
        encoded = [encoder.encode(m.example) for m in mixed]
        self.num_truncated = sum(e.truncated for e in encoded)
        self.dataset = EncodedDataset(encoded, mixed)
        log.info("Data: %d benign + %d poison examples, %d responses truncated to data.max_length=%d",
                 sum(m.kind == "benign" for m in mixed), sum(m.kind == "poison" for m in mixed), self.num_truncated,
                 self.max_length)
        self.ledger = ledger(mixed, poison_ratio=self.poison_ratio, num_samples=self.num_samples, seed=self.seed,
                             max_length=self.max_length, num_truncated=self.num_truncated)

    def fingerprint(self) -> dict[str, Any]:
        """What the encoded training set depends on: the mix (source, row and kind per index), the encoded tokens
        (which tokenizer, chat template and max length shape) and the tokenizer itself."""
        self._require_setup()
        ledger = [(m.example.source, m.example.row, m.kind) for m in self.dataset.mixed]
        tokens = [(e.input_ids, e.labels, e.post_input_ids, e.post_labels) for e in self.dataset.encoded]
        return {"tokenizer": tokenizer_fingerprint(self.tokenizer), "chat_template": digest(self.tokenizer.chat_template),
                "data_ledger": digest(ledger), "data_tokens": digest(tokens), "max_length": int(self.max_length)}

    def batches(self, indices: list[int], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The examples ``indices`` in this order, collated ``batch_size`` at a time (for passes outside training)."""
        self._require_setup()
        collate = self.collator()
        for start in range(0, len(indices), batch_size):
            yield collate([self.dataset[i] for i in indices[start:start + batch_size]])

    def collator(self) -> Collator:
        return Collator(self.tokenizer.pad_token_id)

    def cycling_batches(self, rank: int = 0, world_size: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches of this rank's shard (``batch_size / world_size`` examples each), reshuffled on every pass:
        the side data a defence draws from besides the training loader (Lisa's alignment data, Booster's harmful
        data)."""
        self._require_setup()
        sampler = DistributedSampler(self.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=True)
        loader = DataLoader(self.dataset, batch_size=self.batch_size // world_size, sampler=sampler,
                            collate_fn=self.collator(), drop_last=True)
        if len(loader) == 0:
            raise ConfigError(f"{self.name} data: {len(self.dataset)} examples give no batch of "
                              f"{self.batch_size // world_size}; raise its num_samples")
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from loader

    def _require_setup(self) -> None:
        if self.dataset is None:
            raise RuntimeError("PoisonMixDataModule.setup() must run first")

    def per_device_batch_size(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ConfigError(f"data.batch_size={self.batch_size} (global) is not divisible by the {world} devices; "
                              "pick a multiple of trainer.devices × trainer.num_nodes")
        return self.batch_size // world

    def train_dataloader(self) -> DataLoader:
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self._require_setup()
        # The same seeded permutation for any world size: rank r takes every world-th index, so a step's global
        # batch is the same set of examples in 1-process and N-process runs.
        sampler = DistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=self.shuffle,
                                     seed=self.seed, drop_last=self.drop_last)
        loader = ResumableLoader(self.dataset, batch_size=self.per_device_batch_size(), sampler=sampler,
                                 collate_fn=self.collator(), num_workers=self.num_workers,
                                 drop_last=self.drop_last)
        # Written when training starts, not at setup: a run refused after setup (a corrupt reference cache, a batch
        # size the devices do not divide) leaves an earlier run's ledger in the same directory as it was.
        if self.output_dir is not None and rank == 0:
            write_json(self.output_dir / "poison_ledger.json", self.ledger)
        return loader
