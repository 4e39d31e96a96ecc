"""Padding token rows into batches."""

from __future__ import annotations

import torch


def pad_right(rows: list[list[int]], value: int) -> torch.Tensor:
    """``[len(rows), longest]`` int64 tensor of the rows, each padded on the right with ``value``."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def padded_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and their ``attention_mask``."""
    return pad_right(rows, pad_id), pad_right([[1] * len(r) for r in rows], 0)
