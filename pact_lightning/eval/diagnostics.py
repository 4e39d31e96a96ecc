"""The paper's motivating observation, measured: how fine-tuning moves the policy on the safety tokens S, per position.

For teacher-forced (prompt, response) pairs, at every response position t the profile holds the policy's and the
reference's total probability on S, and KL(p_ref|S ‖ p_policy|S) between the two distributions renormalised over S
(what PACT constrains). Shallow alignment shows as a KL that grows past the first few positions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from torch import Tensor

from pact_lightning.eval.generation import chat_prompt
from pact_lightning.models.scoring import Logits, model_logits, response_logits
from pact_lightning.utils.io import save_figure, subplots
from pact_lightning.utils.progress import iterate


def _safety_log_probs(logits_fn: Logits, batch: list[tuple[list[int], list[int]]], pad_id: int,
                      safety_ids: Tensor) -> Tensor:
    """``[N, k]`` full-vocabulary log-probabilities of the k safety tokens at the batch's N response positions."""
    logits = response_logits(logits_fn, [p for p, _ in batch], [r for _, r in batch], pad_id, safety_ids.device)
    return torch.log_softmax(logits.float(), dim=-1).gather(1, safety_ids.expand(logits.shape[0], -1))


@torch.inference_mode()
def safety_token_profile(policy, reference: Logits, tokenizer, examples: list[tuple[str, str]], safety_ids: Tensor,
                         max_positions: int = 32, batch_size: int = 8) -> dict[str, list]:
    """Per response position t < ``max_positions``, averaged over the examples whose response reaches t.

    Returns lists indexed by position: ``position``, ``policy_mass``, ``reference_mass``, ``kl`` and ``count``
    (positions no example reaches are left out). ``reference`` maps (input_ids, attention_mask) to logits: a frozen
    copy, or the policy with its adapter disabled.
    """
    device = next(policy.parameters()).device
    safety_ids = safety_ids.to(device).view(1, -1)
    encoded = []
    for prompt, response in examples:
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"][:max_positions]
        if response_ids:
            encoded.append((tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"],
                            response_ids))
    sums = torch.zeros(4, max_positions, dtype=torch.float64)  # policy mass, reference mass, KL, count

    was_training = policy.training
    policy.eval()
    try:
        for start in iterate(range(0, len(encoded), batch_size), "diagnostics: safety-token profile",
                             unit="batch", disable=rank_zero_only.rank != 0):
            batch = encoded[start:start + batch_size]
            steps = torch.cat([torch.arange(len(r)) for _, r in batch])
            lp_pol = _safety_log_probs(model_logits(policy), batch, tokenizer.pad_token_id, safety_ids).double()
            lp_ref = _safety_log_probs(reference, batch, tokenizer.pad_token_id, safety_ids).double()
            q_pol = lp_pol - lp_pol.logsumexp(-1, keepdim=True)  # renormalised over S
            q_ref = lp_ref - lp_ref.logsumexp(-1, keepdim=True)
            kl = (q_ref.exp() * (q_ref - q_pol)).sum(-1).clamp_min(0.0)  # ≥ 0 up to rounding
            values = torch.stack([lp_pol.exp().sum(-1), lp_ref.exp().sum(-1), kl, torch.ones_like(kl)]).cpu()
            sums.index_add_(1, steps, values)
    finally:
        policy.train(was_training)
    reached = int((sums[3] > 0).sum())  # responses are prefixes of positions, so the reached ones come first
    count = sums[3, :reached]
    return {"position": list(range(reached)), "policy_mass": (sums[0, :reached] / count).tolist(),
            "reference_mass": (sums[1, :reached] / count).tolist(), "kl": (sums[2, :reached] / count).tolist(),
            "count": [int(c) for c in count]}


def plot_profile(profile: dict[str, list], path: str | Path) -> Path:
    """Mass on S (policy vs reference) and the KL on S against the response position, as a PNG."""
    fig, (ax_mass, ax_kl) = subplots(1, 2, figsize=(10, 3.8))
    x = profile["position"]
    ax_mass.plot(x, profile["policy_mass"], label="policy")
    ax_mass.plot(x, profile["reference_mass"], label="reference", linestyle="--")
    ax_mass.set(xlabel="response position t", ylabel="probability mass on S", title="Mass on the safety tokens")
    ax_mass.legend()
    ax_kl.plot(x, profile["kl"], color="tab:red")
    ax_kl.set(xlabel="response position t", ylabel="KL(p_ref|S ‖ p_policy|S)", title="KL on the safety tokens")
    fig.tight_layout()
    return save_figure(fig, path)


def log_profile_to_wandb(profile: dict[str, list], key: str) -> None:
    """The profile as a W&B table with a KL line and a mass line chart (no-op without an active run)."""
    import wandb

    if wandb.run is None:
        return
    columns = ["position", "policy_mass", "reference_mass", "kl", "count"]
    table = wandb.Table(columns=columns, data=[list(row) for row in zip(*(profile[c] for c in columns))])
    wandb.log({key: table,
               f"{key}/kl": wandb.plot.line(table, "position", "kl", title="KL(p_ref|S ‖ p_policy|S) per position"),
               f"{key}/mass": wandb.plot.line_series(xs=profile["position"],
                                                     ys=[profile["policy_mass"], profile["reference_mass"]],
                                                     keys=["policy", "reference"], title="Mass on S per position",
                                                     xname="position")})
