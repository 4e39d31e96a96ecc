"""What every objective shares: response positions, the policy's view of them, the reference's, the output record.

Conventions (HF causal LM): logits at position t predict token t+1, so response position i of a sequence is the logit
row just before the i-th response token. All per-token tensors below are *flattened* over the batch's response
positions (N = number of labels != -100 after the shift), in row-major (sample, time) order — the same order for the
policy, the full-context reference, the post-only reference and the cache, which is what lets them be compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from pact_lightning.errors import ConfigError
from pact_lightning.objectives.vocab import ChunkedHead, response_stats
from pact_lightning.schema import check

IGNORE_INDEX = -100

# Reference quantities an objective may ask for (``Objective.reference_fields``):
#   subset_full / subset_post : reference logits on the safety tokens, full context / post-only context   [N, k]
#   lse_full / lse_post       : reference log-normaliser of logits / temperature over the whole vocabulary [N]
#   target_logprob            : reference log-prob of the ground-truth response token                      [N]
#   logits                    : the reference's full logits                                                [B, L, V]
REFERENCE_FIELDS = ("subset_full", "subset_post", "lse_full", "lse_post", "target_logprob", "logits")


def response_mask(labels: Tensor) -> Tensor:
    """``[B, L-1]`` bool: logit row t is a response position iff label t+1 is not ignored."""
    return labels[:, 1:] != IGNORE_INDEX


def response_steps(mask: Tensor) -> Tensor:
    """``[N]`` 0-based index of each response position within its response (the t of the gate's decay)."""
    return (mask.long().cumsum(1) - 1)[mask]


def gather_columns(logits: Tensor, mask: Tensor, ids: Tensor) -> Tensor:
    """``[N, k]`` logits of the columns ``ids`` at the response positions, gathered before masking so no
    ``[N, V]`` copy is ever made."""
    shifted = logits[:, :-1]
    cols = shifted.gather(-1, ids.view(1, 1, -1).expand(*shifted.shape[:2], -1))
    return cols[mask]


def log_normaliser(logits: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """``[N]`` logsumexp over the vocabulary of ``logits / temperature`` at the response positions."""
    shifted = logits[:, :-1]
    if temperature != 1.0:
        shifted = shifted / temperature
    return torch.logsumexp(shifted.float(), dim=-1)[mask]


def target_logits(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """``[N]`` logit of the ground-truth next token at the response positions."""
    targets = labels[:, 1:].clamp_min(0).unsqueeze(-1)
    return logits[:, :-1].gather(-1, targets).squeeze(-1)[mask]


@dataclass
class PolicyView:
    """The trainee's quantities at the response positions of one batch."""

    logits: Tensor | ChunkedHead  # [B, L, V] as the model returned them, or hidden states + head (ce_chunk_size)
    labels: Tensor  # [B, L]
    #: vocabulary ids (the objective's safety tokens) whose logits are computed with lse in one pass; ``subset`` of
    #: this same tensor returns them without reading the logits again
    columns: Tensor | None = None
    mask: Tensor = field(init=False)  # [B, L-1]
    steps: Tensor = field(init=False)  # [N]
    lse: Tensor = field(init=False)  # [N] log-normaliser at temperature 1
    target_logit: Tensor = field(init=False)  # [N]
    #: divisor of every token mean; DDP sets it to the global token count / world size so that the averaged gradient
    #: equals the single-process gradient of the same global batch
    denominator: Tensor | float | None = None

    def __post_init__(self) -> None:
        self.mask = response_mask(self.labels)
        self.steps = response_steps(self.mask)
        # one pass over the vocabulary with a single gradient buffer (objectives/vocab.py)
        self.lse, self.target_logit, self._columns = response_stats(self.logits, self.labels, self.mask, self.columns)

    @property
    def num_tokens(self) -> int:
        return int(self.steps.numel())

    def mean(self, values: Tensor) -> Tensor:
        """Token mean over the response positions; 0 (not NaN) when the batch has none."""
        denominator = self.denominator if self.denominator is not None else max(values.numel(), 1)
        return values.sum() / denominator

    def target_logprob(self) -> Tensor:
        return self.target_logit - self.lse

    def subset(self, ids: Tensor) -> Tensor:
        if ids is self.columns:
            return self._columns
        return gather_columns(self.full_logits(), self.mask, ids).float()

    def lse_at(self, temperature: float) -> Tensor:
        # T != 1 (include_rest_mass) reads the logits a second time: one more [B, T, V] gradient in backward
        return self.lse if temperature == 1.0 else log_normaliser(self.full_logits(), self.mask, temperature)

    def full_logits(self) -> Tensor:
        if isinstance(self.logits, ChunkedHead):
            raise ConfigError("this objective reads the policy's logits beyond lse, the target and its safety tokens "
                              "(kl_full, or include_rest_mass at T != 1), which ce_chunk_size never builds; set "
                              "ce_chunk_size=null")
        return self.logits


@dataclass
class ReferenceView:
    """The reference's quantities at the same response positions (only the fields the objective asked for)."""

    subset_full: Tensor | None = None
    subset_post: Tensor | None = None
    lse_full: Tensor | None = None
    lse_post: Tensor | None = None
    target_logprob: Tensor | None = None
    logits: Tensor | None = None

    def require(self, name: str) -> Tensor:
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"the reference provider did not supply {name!r}; the objective lists it in "
                               "reference_fields, so the provider must compute it")
        return value


@dataclass
class ObjectiveOutput:
    loss: Tensor  # what the optimiser minimises: ce + lam * reg
    ce: Tensor  # token-mean cross-entropy on response tokens
    reg: Tensor  # the regulariser (0 for sft)
    metrics: dict[str, Tensor] = field(default_factory=dict)  # detached diagnostics


class Objective(nn.Module):
    """``L = L_CE + λ · L_reg``; subclasses define ``regularizer``. ``safety_tokens`` is optional for objectives that
    do not need it; when given, the per-step safety diagnostic (policy mass on S, KL to the reference on S) is logged,
    so every method, SFT and λ = 0 included, then reads the reference's logits on S (without gradient)."""

    #: reference quantities ``regularizer`` reads (see REFERENCE_FIELDS)
    regularizer_fields: frozenset[str] = frozenset()
    #: temperature at which ``lse_full``/``lse_post`` are wanted
    temperature: float = 1.0
    #: the objective cannot run without a safety-token set
    needs_safety_tokens: bool = False
    #: the objective has a regulariser that λ weighs (SFT does not: its λ is 0 whatever is configured)
    has_regularizer: bool = True
    #: the regulariser reads the pre-alignment weights (``bind_directions(policy, directions)``: AsFT)
    needs_base_weights: bool = False
    #: some steps train on alignment data instead of the loader's batch (``bind_alignment_data``, ``step_batch``:
    #: Lisa), so nothing may be looked up by the loader's example index (the cached reference)
    needs_alignment_data: bool = False

    def __init__(self, lam: float = 1.0, safety_tokens=None) -> None:
        super().__init__()
        check("method.lam", lam)  # λ weighs a divergence: finite and >= 0 (0 = plain SFT)
        if self.needs_safety_tokens and safety_tokens is None:
            raise ConfigError(f"{type(self).__name__} needs safety tokens: set method.safety_tokens=<artifact.safetensors> "
                              "or let `train` build the artifact for model.base")
        self.lam = float(lam)
        self.safety_tokens = safety_tokens
        ids = safety_tokens.ids if safety_tokens is not None else torch.zeros(0, dtype=torch.long)
        self.register_buffer("safety_ids", ids.clone(), persistent=False)

    @property
    def reference_fields(self) -> frozenset[str]:
        """What the reference provider computes per step: the regulariser's inputs when λ > 0, and the logits on S
        that the diagnostic's KL on S reads whenever S is known."""
        fields = set(self.regularizer_fields) if self.lam > 0 else set()
        if self.safety_ids.numel():
            fields.add("subset_full")
        return frozenset(fields)

    @property
    def uses_reference(self) -> bool:
        return bool(self.reference_fields)

    def regularizer(self, policy: PolicyView, reference: ReferenceView) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def step_batch(self, batch: dict, step: int, total_steps: int, rank: int = 0, world_size: int = 1) -> dict:
        """The batch optimiser step ``step`` (of ``total_steps``) trains on: the loader's, except for an objective that
        swaps it (Lisa's alignment phases)."""
        return batch

    def checkpoint_state(self) -> dict:
        """What the objective must carry across a resume (Lisa's anchor); saved in every checkpoint."""
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        pass

    def forward(self, policy: PolicyView, reference: ReferenceView | None) -> ObjectiveOutput:
        ce = policy.mean(policy.lse - policy.target_logit)
        metrics: dict[str, Tensor] = {}
        if self.lam > 0:
            reg, metrics = self.regularizer(policy, reference)
        else:
            reg = ce.new_zeros(())
        if self.safety_ids.numel():
            metrics.update(self._safety_diagnostic(policy, reference))
        return ObjectiveOutput(loss=ce + self.lam * reg, ce=ce, reg=reg, metrics=metrics)

    @torch.no_grad()
    def _safety_diagnostic(self, policy: PolicyView, reference: ReferenceView | None) -> dict[str, Tensor]:
        z = policy.subset(self.safety_ids)
        out = {"safety/mass_on_S": policy.mean(torch.exp(z - policy.lse.unsqueeze(-1)).sum(-1))}
        if reference is not None and reference.subset_full is not None:
            out["safety/kl_on_S"] = policy.mean(subset_kl(reference.subset_full.float(), z))
        return out


def subset_kl(target_logits: Tensor, policy_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``[N]`` KL(softmax(target/T) ‖ softmax(policy/T)) over the subset's columns (no T² factor)."""
    log_q = torch.log_softmax(target_logits / temperature, -1)
    log_p = torch.log_softmax(policy_logits / temperature, -1)
    return (log_q.exp() * (log_q - log_p)).sum(-1)
