"""Teacher forcing: a model's logits at the positions that predict each token of a given response."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from pact_lightning.utils.tensors import padded_batch

Logits = Callable[[Tensor, Tensor], Tensor]  # (input_ids, attention_mask) -> [B, L, V] logits


def response_logits(logits_fn: Logits, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                    device: torch.device | str) -> Tensor:
    """``[N, V]`` logits of ``prompt_i + response_i`` (right-padded, one batch) at the N positions that predict a
    response token, sample by sample in time order: response step s of row i is predicted at len(prompt_i) − 1 + s."""
    ids, mask = padded_batch([p + r for p, r in zip(prompts, responses)], pad_id)
    b = torch.cat([torch.full((len(r),), i) for i, r in enumerate(responses)]).to(device)
    t = torch.cat([torch.arange(len(p) - 1, len(p) - 1 + len(r)) for p, r in zip(prompts, responses)]).to(device)
    return logits_fn(ids.to(device), mask.to(device))[b, t]


def model_logits(model) -> Logits:
    """``model``'s forward as a :data:`Logits` function."""
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits
