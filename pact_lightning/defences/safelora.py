r"""SafeLoRA (Hsu et al., 2024): a post-hoc projection of a trained LoRA adapter onto the alignment subspace
(docs/defence_methods.md, "SafeLoRA"; the authors' code: IBM/SafeLoRA ``model.py``).

For every adapted module i with alignment matrix C_i (pact_lightning/objectives/direction.py) and trained factors
B_i, A_i (ΔW_i = s·B_i A_i):

.. math::

    \cos_i = \frac{⟨C_i B_i A_i,\; B_i A_i⟩_F}{\|C_i B_i A_i\|_F\,\|B_i A_i\|_F}
    \qquad\text{(rounded to 5 decimals; the LoRA scale s cancels)}

    B_i ← C_i B_i \;\text{ if module i is selected}, \qquad A_i \text{ unchanged}

Selection, with every cos computed from the original factors: ``number`` (the authors' default) projects the
``num_proj_layers`` modules of lowest cos (ties at the K-th value included); ``threshold`` projects every module with
cos ≤ τ. A "layer" is one adapted linear module (a block's q_proj and v_proj count separately). The diagnostic Pdst is
the mean over modules of 1 / (1 + ‖B_final − C B_original‖_F) (1 for a projected module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pact_lightning.defences import PosthocDefence, register
from pact_lightning.errors import ConfigError
from pact_lightning.objectives.settings import PROJECTORS
from pact_lightning.schema import INT_POS, Choice, Number, setting

if TYPE_CHECKING:
    import torch

    from pact_lightning.objectives.direction import Direction

log = logging.getLogger(__name__)

SELECT = ("number", "threshold")


@register
@dataclass
class SafeLoRA(PosthocDefence):
    name = "safelora"
    select: str = setting("number", Choice(SELECT), help="number = project the num_proj_layers modules least similar "
                                                          "to their projection; threshold = every module with cos ≤ τ")
    num_proj_layers: int = setting(10, INT_POS, help="K (the authors' default; a q_proj and a v_proj are two modules)")
    threshold: float = setting(0.5, Number(float, -1, 1), help="τ, for select=threshold")
    projector: str = setting("fro", Choice(PROJECTORS), help="C = VVᵀ/‖V‖_F (the authors'); fro2 = VVᵀ/‖V‖_F²; orth "
                                                              "= the projector onto span(V)")

    def edit(self, model, directions: list[Direction]) -> dict[str, Any]:
        return project(model, directions, **self.settings())


def similarity(projected: torch.Tensor, update: torch.Tensor) -> float:
    """Cosine of two flattened matrices, rounded to 5 decimals as the authors' code does (0 for a zero update)."""
    import torch

    denom = float(torch.linalg.matrix_norm(projected) * torch.linalg.matrix_norm(update))
    return round(float((projected * update).sum()) / denom, 5) if denom > 0 else 0.0


def selected(cosines: dict[str, float], select: str, num_proj_layers: int, threshold: float) -> list[str]:
    """The modules to project: cos ≤ τ, where τ is ``threshold`` or (``number``) the K-th smallest cos."""
    if select == "number":
        if num_proj_layers < 1:
            raise ConfigError(f"posthoc.num_proj_layers={num_proj_layers} projects nothing; use an integer >= 1")
        threshold = sorted(cosines.values())[min(num_proj_layers, len(cosines)) - 1]
    elif select != "threshold":
        raise ConfigError(f"posthoc.select={select!r} is unknown; use one of {', '.join(SELECT)}")
    return [name for name, cos in cosines.items() if cos <= threshold]


def project(policy, directions: list[Direction], select: str = "number", num_proj_layers: int = 10,
            threshold: float = 0.5, projector: str = "fro") -> dict[str, Any]:
    """Apply SafeLoRA to ``policy``'s active adapter in place; returns what it did (per-module cos, the projected
    modules, Pdst). Modules without an alignment direction (V = 0) are never projected."""
    import torch

    from pact_lightning.objectives.direction import lora_modules

    with torch.no_grad():
        modules = lora_modules(policy)
        factors, cosines = {}, {}
        for d in directions:
            module = modules[d.name]
            adapter = module.active_adapters[0]
            a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
            update = b.float() @ a.float()
            cb = d.apply(b, projector)
            cosines[d.name] = similarity(cb @ a.float(), update)
            factors[d.name] = (b, cb)
        chosen = selected(cosines, select, int(num_proj_layers), float(threshold))
        for name in chosen:
            b, cb = factors[name]
            b.copy_(cb.to(b.dtype))
        pdst = sum(1.0 / (1.0 + float(torch.linalg.matrix_norm(b.float() - cb))) for b, cb in factors.values())
        report = {"select": select, "num_proj_layers": int(num_proj_layers), "threshold": float(threshold),
                  "projector": projector, "num_modules": len(cosines), "num_projected": len(chosen),
                  "projected": chosen, "cos": cosines, "pdst": pdst / max(len(factors), 1)}
        log.info("SafeLoRA: projected %d of %d modules (%s, projector %s), Pdst %.3f", len(chosen), len(cosines),
                 select, projector, report["pdst"])
        return report
