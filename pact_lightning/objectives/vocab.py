"""The policy's per-position numbers over the vocabulary — log-normaliser, target logit, the logits of k chosen columns
(the safety tokens) — with a hand-written backward, so no [batch, time, vocab] tensor exists beyond the logits and their
gradient; with :class:`ChunkedHead`, not even the logits.

Why hand-written: written with autograd ops, every read of the logits (logsumexp, the target ``gather``, the safety
``gather``, each behind a ``[:, :-1]`` slice) makes its own zero-filled [B, T, V] gradient in backward, which autograd
then sums — on CPU each such pass costs about as much as the rest of a small model's loss. Here the gradient of all
three outputs is written once, row chunk by row chunk, into a single buffer:

.. math::  ∂/∂z_v = softmax(z)_v · ḡ_{lse} + [v = y] · ḡ_{target} + Σ_j [v = S_j] · ḡ_{S_j}

Positions that are not response positions get a zero gradient (the loss does not read them).

:class:`ChunkedHead` (``ce_chunk_size``) goes further for large vocabularies: it takes the final hidden states and the
lm_head weight, computes the logits of ``chunk_size`` response positions at a time, and recomputes them in backward,
so memory holds at most one [chunk, V] block. It is only valid when the model's logits are exactly
``hidden @ lm_head.weight.T`` — :func:`chunked_head` refuses models with a head bias, logit soft-capping or scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pact_lightning.errors import ConfigError

#: row chunk of the plain-logits path: at most this many float32 elements per temporary
_ELEMENTS_PER_CHUNK = 1 << 25
#: config attributes of architectures whose logits are not ``hidden @ W.T`` (Gemma-2/3, Cohere, Granite, ...)
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


@dataclass
class ChunkedHead:
    """The final hidden states and the lm_head weight, standing in for the logits ``hidden @ weight.T``."""

    hidden: Tensor  # [B, L, H]
    weight: Tensor  # [V, H]
    chunk_size: int


def chunked_head(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, chunk_size: int) -> ChunkedHead:
    """Run ``model``'s decoder only (no lm_head) and pair its output with the head weight."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = hf.get_output_embeddings()
    transforms = [a for a in _LOGIT_TRANSFORMS if getattr(hf.config, a, None) not in (None, 1, 1.0)]
    if not isinstance(head, nn.Linear) or head.bias is not None or transforms:
        raise ConfigError(f"ce_chunk_size needs logits = hidden @ lm_head.weight.T, but {type(hf).__name__} has "
                          f"{transforms or 'a biased or non-linear head'}; set ce_chunk_size=null for this model")
    hidden = hf.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return ChunkedHead(hidden, head.weight, int(chunk_size))


def _stats(z: Tensor, targets: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    z = z.float()
    return torch.logsumexp(z, -1), z.gather(1, targets[:, None]).squeeze(1), z.index_select(1, ids)


def _grad(z: Tensor, lse: Tensor, targets: Tensor, ids: Tensor, g_lse: Tensor, g_target: Tensor,
          g_columns: Tensor) -> Tensor:
    """float32 gradient of one chunk of logit rows (the equation in the module docstring)."""
    g = (z.float() - lse[:, None]).exp_().mul_(g_lse[:, None])
    g.scatter_add_(1, targets[:, None], g_target[:, None])
    return g.index_add_(1, ids, g_columns)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, max(n, 1), size)]  # one empty chunk when n = 0


class _FromLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, rows: Tensor, targets: Tensor, ids: Tensor):
        flat = logits.reshape(-1, logits.shape[-1])
        ctx.chunks = _chunks(rows.numel(), max(1, _ELEMENTS_PER_CHUNK // flat.shape[1]))
        lse, target, columns = (torch.cat(t) for t in zip(*[_stats(flat.index_select(0, rows[c]), targets[c], ids)
                                                             for c in ctx.chunks]))
        ctx.save_for_backward(logits, rows, targets, ids, lse)
        return lse, target, columns

    @staticmethod
    def backward(ctx, g_lse: Tensor, g_target: Tensor, g_columns: Tensor):
        logits, rows, targets, ids, lse = ctx.saved_tensors
        flat = logits.reshape(-1, logits.shape[-1])
        grad = torch.zeros_like(flat)
        for c in ctx.chunks:
            g = _grad(flat.index_select(0, rows[c]), lse[c], targets[c], ids, g_lse[c], g_target[c], g_columns[c])
            grad.index_copy_(0, rows[c], g.to(grad.dtype))
        return grad.view_as(logits), None, None, None


class _FromHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, ids: Tensor, chunk_size: int):
        ctx.chunks = _chunks(hidden.shape[0], chunk_size)
        lse, target, columns = (torch.cat(t) for t in zip(*[_stats(hidden[c] @ weight.T, targets[c], ids)
                                                             for c in ctx.chunks]))
        ctx.save_for_backward(hidden, weight, targets, ids, lse)
        return lse, target, columns

    @staticmethod
    def backward(ctx, g_lse: Tensor, g_target: Tensor, g_columns: Tensor):
        hidden, weight, targets, ids, lse = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        for c in ctx.chunks:
            g = _grad(hidden[c] @ weight.T, lse[c], targets[c], ids, g_lse[c], g_target[c], g_columns[c])
            g = g.to(weight.dtype)
            grad_hidden[c] = g @ weight
            if grad_weight is not None:
                grad_weight.addmm_(g.T.float(), hidden[c].float())
        return grad_hidden, grad_weight.to(weight.dtype) if grad_weight is not None else None, None, None, None


def response_stats(source: Tensor | ChunkedHead, labels: Tensor, mask: Tensor,
                   columns: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``lse`` [N], ``target_logit`` [N] and the logits of ``columns`` [N, k] (float32) at the response positions
    ``mask`` ([B, L-1]; row t predicts label t+1), flattened in row-major (sample, time) order."""
    ids = columns if columns is not None else torch.zeros(0, dtype=torch.long, device=labels.device)
    targets = labels[:, 1:][mask]
    if isinstance(source, ChunkedHead):
        hidden = source.hidden[:, :-1][mask]
        return _FromHead.apply(hidden, source.weight, targets, ids, source.chunk_size)
    B, L = labels.shape
    rows = (torch.arange(B, device=labels.device)[:, None] * L + torch.arange(L - 1, device=labels.device))[mask]
    return _FromLogits.apply(source, rows, targets, ids)
