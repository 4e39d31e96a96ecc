r"""The alignment direction of each LoRA-adapted module, which AsFT's regulariser and SafeLoRA's projection read
(docs/defence_methods.md, "The alignment direction"; the pre-alignment weights are loaded by defences/base_weights.py).

For an adapted linear module i with frozen aligned weight W_aligned,i (the LoRA's ``base_layer``) and the
pre-alignment weight W_base,i of the same name and shape,

.. math::

    V_i = W_{aligned,i} − W_{base,i} \in ℝ^{d_{out} × d_{in}}, \qquad C_i = \frac{V_i V_i^⊤}{\|V_i\|_F}

C_i acts on the output side (``C_i · B_i`` for a LoRA factor B_i). It is the authors' matrix: divided by ‖V‖_F, not by
‖V‖_F², so it is not a projector — its eigenvalues are σ_k² / ‖V‖_F along V's left singular vectors and it rescales
what it keeps. ``projector`` offers the two exact variants as ablations:

* ``fro``  (default, the papers' code): V Vᵀ / ‖V‖_F
* ``fro2``: V Vᵀ / ‖V‖_F² (exact for a rank-one V)
* ``orth``: U Uᵀ, U the left singular vectors of V's nonzero singular values (the orthogonal projector onto its span)

C is never formed: ``apply`` computes C·X = V(VᵀX)/‖V‖ from V, which for a d_out × r factor costs d_out·d_in·r.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pact_lightning.errors import ConfigError
from pact_lightning.objectives.settings import PROJECTORS  # declared with AsFT's settings (torch-free)

log = logging.getLogger(__name__)


@dataclass
class Direction:
    """V of one adapted module (float32) and its Frobenius norm."""

    name: str
    v: Tensor
    norm: float = field(init=False)
    _basis: Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.v = self.v.float()
        self.norm = float(torch.linalg.matrix_norm(self.v))

    def apply(self, x: Tensor, projector: str = "fro") -> Tensor:
        """C · x for ``x`` of shape [d_out, r], in float32 (V moves to x's device once, not every call)."""
        if self.v.device != x.device:
            self.v, self._basis = self.v.to(x.device), None
        xf = x.float()
        if projector == "orth":
            return self.basis() @ (self.basis().T @ xf)
        if projector in ("fro", "fro2"):
            return self.v @ (self.v.T @ xf) / (self.norm if projector == "fro" else self.norm ** 2)
        raise ConfigError(f"projector={projector!r} is unknown; use one of {', '.join(PROJECTORS)}")

    def basis(self) -> Tensor:
        """Left singular vectors of V's nonzero singular values (computed once)."""
        if self._basis is None:
            u, s, _ = torch.linalg.svd(self.v, full_matrices=False)
            self._basis = u[:, s > s.max() * max(self.v.shape) * torch.finfo(torch.float32).eps]
        return self._basis


PEFT_PREFIX = "base_model.model."  # what peft's wrapper puts before the transformers model's module names


def lora_modules(policy) -> dict[str, torch.nn.Module]:
    """The LoRA-adapted linear modules of a peft policy, by their name in the underlying transformers model."""
    modules = {name.removeprefix(PEFT_PREFIX): m for name, m in policy.named_modules()
               if hasattr(m, "lora_A") and hasattr(m, "base_layer")}
    if not modules:
        raise ConfigError("this defence acts on a LoRA adapter, but the policy has none; set model.lora "
                          "(pact_lightning/conf/model/) instead of full fine-tuning")
    return modules


@torch.no_grad()
def alignment_directions(policy, base_model) -> list[Direction]:
    """V_i for every LoRA-adapted module of ``policy`` whose aligned weights differ from ``base_model``'s (the
    pre-alignment model, a transformers model with the same architecture). A module the alignment left unchanged
    (V = 0, so C = 0/0) is skipped with a warning; if every module is unchanged the aligned and base weights are the
    same model, which is refused."""
    base = dict(base_model.named_modules())
    directions, unchanged = [], []
    for name, module in lora_modules(policy).items():
        if name not in base or not hasattr(base[name], "weight"):
            raise ConfigError(f"the base model has no module {name!r} that the LoRA adapter adapts; model.base must be "
                              "the pre-alignment checkpoint of the same architecture")
        aligned, pre = module.base_layer.weight, base[name].weight
        if aligned.shape != pre.shape:
            raise ConfigError(f"{name}: aligned weight {tuple(aligned.shape)} vs base weight {tuple(pre.shape)}; "
                              "model.base must be the pre-alignment checkpoint of the same model")
        d = Direction(name, aligned.detach().float().cpu() - pre.detach().float().cpu())
        (directions if d.norm > 0 else unchanged).append(d)
    if unchanged:
        log.warning("%d adapted module(s) are identical in the aligned and the base model (first: %s); they have no "
                    "alignment direction and are left alone", len(unchanged), unchanged[0].name)
    if not directions:
        raise ConfigError("the aligned model and model.base have identical weights in every adapted module: there is "
                          "no alignment direction. Set model.base to the pre-alignment checkpoint (e.g. the base model "
                          "of an instruct model), or run the alignment stage (align.enabled=true)")
    norms = [d.norm for d in directions]
    log.info("alignment directions: %d modules, ‖V‖_F from %.3g to %.3g", len(directions), min(norms), max(norms))
    return directions
