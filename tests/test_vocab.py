"""Lean losses (objectives/vocab.py): the hand-written one-pass statistics and the chunked lm_head agree with autograd."""

from __future__ import annotations

import functools

import pytest
import torch

from pact_lightning.errors import ConfigError
from pact_lightning.models.module import PactModule
from pact_lightning.objectives.base import PolicyView, ReferenceView, gather_columns, log_normaliser, target_logits
from pact_lightning.objectives.kl_full import KLFull
from pact_lightning.objectives.vocab import ChunkedHead, chunked_head, response_stats
from test_reference_cache import OBJECTIVES, datamodule, tiny_policy

IDS = torch.tensor([3, 11, 2, 40])


def random_batch(seed=0, B=3, L=9, V=50, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, :4] = labels[1, :1] = -100
    labels[2] = -100  # a sample with no response at all
    logits = (3 * torch.randn(B, L, V, generator=g)).to(dtype).requires_grad_()
    return logits, labels


def autograd_stats(logits, labels, mask, ids):
    return (log_normaliser(logits, mask), target_logits(logits, labels, mask).float(),
            gather_columns(logits, mask, ids).float())


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_one_pass_statistics_match_autograd_values_and_gradients(dtype, tol):
    logits, labels = random_batch(dtype=dtype)
    mask = labels[:, 1:] != -100
    lean, plain = response_stats(logits, labels, mask, IDS), autograd_stats(logits, labels, mask, IDS)
    upstream = [torch.randn_like(t) for t in plain]
    grads = [torch.autograd.grad(sum((u * t).sum() for u, t in zip(upstream, out)), logits)[0] for out in (lean, plain)]
    for a, b in zip(lean, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)
    torch.testing.assert_close(grads[0].float(), grads[1].float(), rtol=0, atol=tol)
    assert grads[0][~torch.cat([mask, torch.zeros(3, 1, dtype=torch.bool)], 1)].abs().max() == 0


@pytest.mark.parametrize("name", ["pact", "pact_rest_mass", "pact_plain", "tokenwise"])
def test_objectives_give_the_same_loss_and_gradient_with_the_one_pass_columns(name):
    objective = OBJECTIVES[name]()
    objective.safety_ids = torch.tensor([3, 11, 2, 40, 7, 9, 21, 30])  # inside the test vocabulary
    logits, labels = random_batch(V=64)
    N = int((labels[:, 1:] != -100).sum())
    g = torch.Generator().manual_seed(1)
    ref = ReferenceView(subset_full=torch.randn(N, 8, generator=g), subset_post=torch.randn(N, 8, generator=g),
                        lse_full=torch.full((N,), 9.0), lse_post=torch.full((N,), 9.0),
                        target_logprob=-torch.rand(N, generator=g))
    outs = []
    for columns in (objective.safety_ids, None):
        loss = objective(PolicyView(logits, labels, columns=columns), ref).loss
        outs.append((loss, torch.autograd.grad(loss, logits)[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("lora", [True, False])
def test_chunked_head_matches_the_full_logits_in_values_and_trainable_gradients(lora):
    policy, tokenizer = tiny_policy(lora)
    batch = next(iter(datamodule(tokenizer).train_dataloader()))
    objective = OBJECTIVES["pact_plain"]()
    grads = []
    for chunk in (None, 7):  # 7 does not divide the number of response positions: a ragged last chunk
        module = PactModule(policy, objective, None, optimizer=functools.partial(torch.optim.AdamW), ce_chunk_size=chunk)
        view = module.policy_view(batch)
        assert isinstance(view.logits, ChunkedHead) == (chunk is not None)
        stats = (view.lse, view.target_logit, view.subset(objective.safety_ids))
        loss = sum(t.sin().sum() for t in stats)  # every output gets a non-trivial upstream gradient
        trainable = [p for p in policy.parameters() if p.requires_grad]
        grads.append((stats, torch.autograd.grad(loss, trainable)))
    for a, b in zip(grads[0][0], grads[1][0]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)  # fp32 sums in another order


def test_chunked_head_refuses_what_it_cannot_compute():
    policy, tokenizer = tiny_policy()
    ids = torch.tensor([[1, 2, 3]])
    policy.get_base_model().config.final_logit_softcapping = 30.0
    with pytest.raises(ConfigError, match="final_logit_softcapping"):
        chunked_head(policy, ids, torch.ones_like(ids), 4)
    policy.get_base_model().config.final_logit_softcapping = None
    view = PolicyView(chunked_head(policy, ids, torch.ones_like(ids), 4), torch.tensor([[-100, 2, 3]]))
    with pytest.raises(ConfigError, match="ce_chunk_size=null"):
        KLFull().regularizer(view, ReferenceView(logits=torch.zeros(1, 3, 5)))
