"""Every objective against a deliberately naive per-sequence, per-position loop (values and gradients)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import typing
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import get_class
from torch import nn

from pact_lightning.errors import ConfigError
from pact_lightning.models.reference import reference_view
from pact_lightning.objectives.base import PolicyView
from pact_lightning.objectives.kl_full import KLFull
from pact_lightning.objectives.pact import Pact
from pact_lightning.objectives.pact_plain import PactPlain
from pact_lightning.objectives.settings import SETTINGS, PactSettings
from pact_lightning.objectives.sft import SFT
from pact_lightning.objectives.tokenwise import Tokenwise
from pact_lightning.safety.tokens import SafetyTokens
from pact_lightning.schema import POSITIVE, Choice, Number, check_settings, setting, settings_problems

V, HEADER = 13, 2
IDS = torch.tensor([2, 5, 7, 9])
WEIGHTS = torch.tensor([0.6, -0.2, 0.7, -0.3])  # negative weights must get zero target mass


def tokens(weights=WEIGHTS) -> SafetyTokens:
    return SafetyTokens(ids=IDS, weights=weights, tokens=[str(i) for i in IDS.tolist()], m=torch.ones(4), d=weights)


class FixedLogits(nn.Module):
    """Stands in for the reference network: returns given logits for the full and the post-only inputs."""

    def __init__(self, full: torch.Tensor, post: torch.Tensor) -> None:
        super().__init__()
        self.full, self.post = full, post

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.full if input_ids.shape == self.full.shape[:2] else self.post)


def make_batch(seed: int = 0, prompt_lens=(3, 1, 4), resp_lens=(4, 5, 0), scale: float = 3.0):
    """Random logits with prompt masks, padding, and one sample with no response tokens at all."""
    g = torch.Generator().manual_seed(seed)
    B = len(prompt_lens)
    L = max(p + r for p, r in zip(prompt_lens, resp_lens)) + 1
    Lp = HEADER + max(resp_lens) + 1
    labels = torch.full((B, L), -100)
    post_labels = torch.full((B, Lp), -100)
    for b, (p, r) in enumerate(zip(prompt_lens, resp_lens)):
        resp = torch.randint(0, V, (r,), generator=g)
        labels[b, p:p + r] = resp
        post_labels[b, HEADER:HEADER + r] = resp
    batch = {"input_ids": torch.zeros(B, L, dtype=torch.long), "attention_mask": torch.ones(B, L, dtype=torch.long),
             "labels": labels, "post_input_ids": torch.zeros(B, Lp, dtype=torch.long),
             "post_attention_mask": torch.ones(B, Lp, dtype=torch.long), "post_labels": post_labels}
    policy = (scale * torch.randn(B, L, V, generator=g)).requires_grad_()
    ref_full = scale * torch.randn(B, L, V, generator=g)
    ref_post = scale * torch.randn(B, Lp, V, generator=g)
    return batch, policy, ref_full, ref_post


def run(objective, batch, policy, ref_full, ref_post):
    view = PolicyView(policy, batch["labels"])
    ref = reference_view(FixedLogits(ref_full, ref_post), batch, objective.reference_fields, objective.safety_ids,
                         objective.temperature) if objective.reference_fields else None
    out = objective(view, ref)
    (grad,) = torch.autograd.grad(out.loss, policy)
    return out, grad


# ---------------------------------------------------------------- naive reference implementations (plain loops)

def positions(labels, b):
    """(logit row, response step) pairs of sample b: row t predicts label t+1."""
    rows = [t for t in range(labels.shape[1] - 1) if labels[b, t + 1] != -100]
    return list(zip(rows, range(len(rows))))


def naive_top_p_count(logits, top_p=0.9):
    probs = sorted(torch.softmax(logits, -1).tolist(), reverse=True)
    total = 0.0
    for n, p in enumerate(probs, start=1):
        total += p
        if total >= top_p:
            return n
    return len(probs)


def naive_loss(batch, policy, ref_full, ref_post, reg_fn, lam):
    labels, post_labels = batch["labels"], batch["post_labels"]
    ce_terms, reg_terms = [], []
    for b in range(labels.shape[0]):
        post_rows = [t for t, _ in positions(post_labels, b)]
        for (t, i), tp in zip(positions(labels, b), post_rows):
            y = labels[b, t + 1]
            ce_terms.append(-torch.log_softmax(policy[b, t], -1)[y])
            reg_terms.append(reg_fn(policy[b, t], ref_full[b, t], ref_post[b, tp], y, i))
    n = max(len(ce_terms), 1)
    ce = sum(ce_terms) / n if ce_terms else policy.sum() * 0
    reg = sum(reg_terms) / n if reg_terms else policy.sum() * 0
    return ce + lam * reg


def naive_gate(z_theta, z_post, i, k=4):
    gap = (naive_top_p_count(z_theta.detach()) - naive_top_p_count(z_post)) / k
    return 1 / (1 + math.exp(-2.0 * gap)) * math.exp(-max(i - 8, 0) / 8.0)


def naive_pact_term(T=2.0, gate=True, weighted=True, rest=False):
    w = WEIGHTS.clamp_min(0) if weighted else torch.ones(4)

    def term(pol, full, post, y, i):
        c = naive_gate(pol[IDS], post[IDS], i) if gate else 0.0
        if not rest:
            mix = (1 - c) * full[IDS] + c * post[IDS]
            q = torch.softmax(mix / T, -1) * w
            q = q / q.sum()
            log_p = torch.log_softmax(pol[IDS] / T, -1)
        else:
            def k1(z):  # exact probabilities of the 4 tokens and of "anything else" at temperature T
                p = torch.softmax(z / T, -1)
                return torch.log(torch.cat([p[IDS], (1 - p[IDS].sum()).reshape(1)]))
            mixed = torch.softmax((1 - c) * k1(full) + c * k1(post), -1)
            tilted = mixed[:4] * w
            q = torch.cat([tilted / tilted.sum() * mixed[:4].sum(), mixed[4:]])
            log_p = k1(pol)
        return T * T * sum(q[j] * (torch.log(q[j]) - log_p[j]) for j in range(len(q)) if q[j] > 0)
    return term


def naive_kl_full(pol, full, post, y, i):
    q = torch.softmax(full, -1)
    return (q * (torch.log_softmax(full, -1) - torch.log_softmax(pol, -1))).sum()


def naive_tokenwise(pol, full, post, y, i):
    beta = 0.5 if i == 0 else (2.0 if i < 5 else 0.1)
    delta = torch.log_softmax(pol, -1)[y] - torch.log_softmax(full, -1)[y]
    tokenwise = 2 / beta * torch.log1p(torch.exp(-beta * delta))
    return tokenwise + torch.log_softmax(pol, -1)[y]  # regulariser = tokenwise − CE


CASES = {
    "sft": (lambda: SFT(), lambda *a: torch.zeros(())),
    "pact": (lambda: Pact(lam=0.7, safety_tokens=tokens()), naive_pact_term()),
    "pact_rest_mass": (lambda: Pact(lam=0.7, safety_tokens=tokens(), include_rest_mass=True),
                       naive_pact_term(rest=True)),
    "pact_plain": (lambda: PactPlain(lam=1.3, safety_tokens=tokens()), naive_pact_term(gate=False, weighted=False)),
    "pact_plain_rest_mass": (lambda: PactPlain(lam=1.3, safety_tokens=tokens(), include_rest_mass=True),
                             naive_pact_term(gate=False, weighted=False, rest=True)),
    "kl_full": (lambda: KLFull(lam=0.5), naive_kl_full),
    "tokenwise": (lambda: Tokenwise(lam=1.0), naive_tokenwise),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_objective_matches_naive_loop(name, seed):
    make, term = CASES[name]
    objective = make()
    # long responses so the gate's decay (t > 8) and the tokenwise β tiers are all exercised
    batch, policy, ref_full, ref_post = make_batch(seed, prompt_lens=(3, 1, 4, 2), resp_lens=(4, 12, 0, 7))
    out, grad = run(objective, batch, policy, ref_full, ref_post)
    expected = naive_loss(batch, policy, ref_full, ref_post, term, objective.lam)
    (expected_grad,) = torch.autograd.grad(expected, policy)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)
    if name != "sft":
        assert out.reg.abs().item() > 1e-4, "the regulariser should be active on random logits"


@pytest.mark.parametrize("name", [n for n in CASES if n != "sft"])
def test_lambda_zero_equals_sft_exactly(name):
    make, _ = CASES[name]
    objective = make()
    objective.lam = 0.0
    batch, policy, ref_full, ref_post = make_batch(3)
    out, grad = run(objective, batch, policy, ref_full, ref_post)
    sft, sft_grad = run(SFT(), batch, policy, ref_full, ref_post)
    assert torch.equal(out.loss, sft.loss)
    assert torch.equal(grad, sft_grad)


@pytest.mark.parametrize("name", list(CASES))
def test_softmax_runs_over_the_vocabulary_axis(name):
    """Adding a per-position constant to every vocabulary logit leaves any correct loss unchanged; a loss that
    normalised over the sequence axis (the bug of one anchor's KL baseline) would change."""
    make, _ = CASES[name]
    objective = make()
    batch, policy, ref_full, ref_post = make_batch(4)
    shift = 5.0 * torch.randn(policy.shape[0], policy.shape[1], 1)
    out, _ = run(objective, batch, policy, ref_full, ref_post)
    shifted, _ = run(objective, batch, (policy.detach() + shift).requires_grad_(), ref_full + shift,
                     ref_post + 5.0 * torch.randn(ref_post.shape[0], ref_post.shape[1], 1))
    assert shifted.loss.item() == pytest.approx(out.loss.item(), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_fully_masked_rows_and_batches_give_no_nan(name):
    make, _ = CASES[name]
    objective = make()
    batch, policy, ref_full, ref_post = make_batch(5, resp_lens=(0, 3, 0))
    out, grad = run(objective, batch, policy, ref_full, ref_post)
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all()
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0  # masked rows get no gradient
    empty, policy_e, rf, rp = make_batch(6, resp_lens=(0, 0, 0))
    out, grad = run(objective, empty, policy_e, rf, rp)
    assert out.loss.item() == 0.0 and torch.isfinite(grad).all()


def test_pact_target_differs_from_policy_even_when_policy_equals_reference():
    """docs/method.md §3–§4: the w-tilted target pushes in-S mass toward aligned-over-base tokens from step 0."""
    batch, policy, _, _ = make_batch(7)
    same = policy.detach()
    post = same[:, : batch["post_labels"].shape[1]]  # any post-only logits: the gate only mixes the two
    out, _ = run(Pact(lam=1.0, safety_tokens=tokens()), batch, policy, same, post)
    assert out.reg.item() > 1e-3
    plain, _ = run(PactPlain(lam=1.0, safety_tokens=tokens()), batch, policy, same, post)
    assert plain.reg.item() == pytest.approx(0.0, abs=1e-6)


def test_rest_mass_penalises_moving_mass_out_of_S():
    """Scaling all safety logits down by the same amount keeps the renormalised subset KL at zero but not the k+1 KL."""
    batch, policy, _, _ = make_batch(8)
    ref = policy.detach()
    moved = ref.clone()
    moved[..., IDS] -= 4.0  # same shift for every safety token: relative confidences inside S unchanged
    moved.requires_grad_()
    post = ref[:, : batch["post_labels"].shape[1]]
    subset_only, _ = run(PactPlain(safety_tokens=tokens()), batch, moved, ref, post)
    with_rest, _ = run(PactPlain(safety_tokens=tokens(), include_rest_mass=True), batch, moved, ref, post)
    assert subset_only.reg.item() == pytest.approx(0.0, abs=1e-6)
    assert with_rest.reg.item() > 1e-2


def test_gate_has_no_gradient_and_stays_in_range():
    objective = Pact(safety_tokens=tokens())
    z_theta = torch.randn(20, 4, requires_grad=True)
    c = objective.gate_weights(z_theta, torch.randn(20, 4), torch.arange(20))
    assert not c.requires_grad
    assert (c[:9] >= 1 / (1 + math.exp(2)) - 1e-6).all() and (c <= 1 / (1 + math.exp(-2)) + 1e-6).all()
    assert (c[9:] < c[:9].max()).all()  # decayed after N = 8


def test_negative_lambda_and_missing_safety_tokens_are_config_errors():
    with pytest.raises(ConfigError, match="method.lam"):
        Pact(lam=-1.0, safety_tokens=tokens())
    with pytest.raises(ConfigError, match="method.safety_tokens"):
        Pact(lam=1.0, safety_tokens=None)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_objective_setting_is_declared_once_with_type_default_range_and_help(name):
    """Each field of a settings dataclass: help text; a rule whose kind and optionality are its annotation's; a default
    that passes it. The class named by ``_target_`` takes exactly these settings: built with every default given
    explicitly, it is the objective built with none."""
    cls = SETTINGS[name]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "_target_":
            continue
        assert f.metadata["help"], f.name
        rule, annotation = f.metadata["rule"], hints[f.name]
        if isinstance(rule, Number):
            assert annotation is rule.kind and not rule.optional, f.name
        elif isinstance(rule, Choice):
            assert annotation is str and f.default in rule.options, f.name
        else:
            assert rule is None and (f.name == "lam" or annotation is bool), f.name
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ("_target_", "lam")}
    assert settings_problems(cls, defaults, "method.objective") == []
    objective = get_class(cls._target_)
    needs = {"safety_tokens": tokens()} if objective.needs_safety_tokens else {}
    built = {k: v for k, v in vars(objective(**needs, **defaults)).items() if not isinstance(v, dict)}
    assert built == {k: v for k, v in vars(objective(**needs)).items() if not isinstance(v, dict)}


def test_settings_given_in_code_are_refused_with_the_full_key():
    with pytest.raises(ConfigError, match=r"^method.objective.temperature=nan is not finite; use a finite number > 0$"):
        Pact(safety_tokens=tokens(), temperature=float("nan"))
    with pytest.raises(ConfigError, match=r"method.objective.tempreature is not a setting of PactSettings; use one "
                                          r"of lam, temperature, include_rest_mass"):
        Pact(safety_tokens=tokens(), tempreature=3.0)
    with pytest.raises(ConfigError, match=r"method.objective.gate=1 is not true or false; use true or false"):
        Pact(safety_tokens=tokens(), gate=1)
    with pytest.raises(ConfigError, match=r"method.objective.gate is not a setting of PactPlainSettings"):
        PactPlain(safety_tokens=tokens(), gate=True)  # PactPlain is PACT without the gate
    with pytest.raises(ConfigError, match=r"method.objective.beta=0 is out of range; use a finite number > 0"):
        Tokenwise(beta=0)
    with pytest.raises(ConfigError, match=r"invalid settings:\n  method.objective.gate_n=1.5 is not an integer.*\n  "
                                          r"method.objective.gate_top_p=0 is out of range"):
        Pact(safety_tokens=tokens(), gate_n=1.5, gate_top_p=0)
    assert Pact(safety_tokens=tokens(), temperature=3).temperature == 3.0


def test_check_settings_works_for_any_settings_dataclass_and_prefix():
    """The mechanism the defences' settings reuse (align.defence, posthoc): type from the annotation, rule, help."""

    @dataclass
    class Toy:
        rho: float = setting(2.0, POSITIVE, help="a radius")
        mode: str = setting("a", Choice(("a", "b")), help="a mode")
        layers: int | None = setting(None, Number(int, 1, optional=True), help="layers, or null for all")
        on: bool = setting(True, help="a switch")
        note: str | None = setting(None, help="free text")

    assert check_settings(Toy, {"rho": 0.5, "note": "x"}, prefix="align.defence") == Toy(rho=0.5, note="x")
    for values, says in (({"rho": -1.0}, "align.defence.rho=-1.0 is out of range; use a finite number > 0"),
                         ({"mode": "c"}, "align.defence.mode='c' is not one of the options; use one of a, b"),
                         ({"layers": 0}, "align.defence.layers=0 is out of range; use an integer >= 1, or null"),
                         ({"on": "yes"}, "align.defence.on='yes' is not true or false; use true or false"),
                         ({"note": 3}, "align.defence.note=3 is not a string; use a string, or null"),
                         ({"rhoo": 1.0}, "align.defence.rhoo is not a setting of Toy; use one of rho, mode, layers")):
        with pytest.raises(ConfigError) as raised:
            check_settings(Toy, values, prefix="align.defence")
        assert str(raised.value).startswith(says), str(raised.value)


def test_the_objective_settings_import_no_torch():
    """Composing a config (which registers the settings as schemas) imports no torch."""
    code = ("import sys; import pact_lightning.objectives.settings, pact_lightning.schema; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_objective_settings_are_the_constructor_defaults():
    """PactSettings' defaults are the authors' (docs/method.md): what Pact() runs with."""
    objective = Pact(safety_tokens=tokens())
    assert (objective.temperature, objective.gate, objective.gate_top_p, objective.gate_alpha, objective.gate_n,
            objective.gate_tau) == (PactSettings.temperature, True, 0.9, 2.0, 8, 8.0) == (2.0, True, 0.9, 2.0, 8, 8.0)
