"""The defences PACT is compared with, against plain re-implementations of their update rules written from the spec
(docs/defence_methods.md), on hand-checked numbers and tiny tensors; then each one through the real train/evaluate apps."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from pact_lightning.objectives.direction import alignment_directions
from pact_lightning.defences.safelora import project, selected
from pact_lightning.errors import ConfigError
from pact_lightning.objectives.asft import Asft
from pact_lightning.objectives.lisa import Lisa


class Linear2(nn.Module):
    """Two bare linear layers, named as a transformer's q/v projections, for a LoRA adapter on hand-made weights."""

    def __init__(self, d_in: int = 3, d_out: int = 2) -> None:
        super().__init__()
        self.q_proj = nn.Linear(d_in, d_out, bias=False)
        self.v_proj = nn.Linear(d_in, d_out, bias=False)


def lora_policy(aligned: dict[str, torch.Tensor], factors: dict[str, tuple], r: int = 1, alpha: float = 4.0):
    """A peft LoRA (rank ``r``) on Linear2 whose frozen weights are ``aligned`` and whose (B, A) are ``factors``."""
    from peft import LoraConfig, get_peft_model

    model = Linear2(aligned["q_proj"].shape[1], aligned["q_proj"].shape[0])
    for name, w in aligned.items():
        getattr(model, name).weight.data.copy_(w)
    policy = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(aligned), lora_dropout=0.0))
    for name, (b, a) in factors.items():
        module = getattr(policy.base_model.model, name)
        module.lora_B["default"].weight.data.copy_(b)
        module.lora_A["default"].weight.data.copy_(a)
    return policy


def base_model(weights: dict[str, torch.Tensor]) -> Linear2:
    model = Linear2(weights["q_proj"].shape[1], weights["q_proj"].shape[0])
    for name, w in weights.items():
        getattr(model, name).weight.data.copy_(w)
    return model


# The spec's 2×3 example: V = [[1, 1, 0], [1, 1, 0]] ⇒ C = VVᵀ/‖V‖_F = [[1, 1], [1, 1]]; B = [[2], [0]], A = [[1, 0, 1]].
V = torch.tensor([[1.0, 1, 0], [1, 1, 0]])
B, A = torch.tensor([[2.0], [0.0]]), torch.tensor([[1.0, 0, 1]])


def example_policy():
    """q_proj carries the example; v_proj has an update orthogonal to nothing in particular (its own V)."""
    w_base = {"q_proj": torch.zeros(2, 3), "v_proj": torch.zeros(2, 3)}
    aligned = {"q_proj": V.clone(), "v_proj": torch.tensor([[0.0, 0, 1], [0, 0, 0]])}
    factors = {"q_proj": (B, A), "v_proj": (torch.tensor([[1.0], [1.0]]), torch.tensor([[1.0, 0, 0]]))}
    return lora_policy(aligned, factors), base_model(w_base)


def b_of(policy, name: str) -> torch.Tensor:
    return getattr(policy.base_model.model, name).lora_B["default"].weight.detach()


# ---- SafeLoRA ----------------------------------------------------------------------------------------------------


def test_safelora_hand_computed_2x3_projection():
    policy, base = example_policy()
    dirs = {d.name: d for d in alignment_directions(policy, base)}
    assert dirs["q_proj"].norm == pytest.approx(2.0)
    assert dirs["q_proj"].apply(torch.eye(2)).tolist() == [[1.0, 1.0], [1.0, 1.0]]  # C itself
    report = project(policy, list(dirs.values()), select="threshold", threshold=0.5)
    assert report["cos"]["q_proj"] == pytest.approx(0.70711)  # 8 / (4·√8)
    assert "q_proj" not in report["projected"] and b_of(policy, "q_proj").tolist() == [[2.0], [0.0]]

    policy, base = example_policy()
    report = project(policy, alignment_directions(policy, base), select="threshold", threshold=0.75)
    assert "q_proj" in report["projected"]
    assert b_of(policy, "q_proj").tolist() == [[2.0], [2.0]]  # C·B, not the projector's [[1], [1]]

    policy, base = example_policy()
    project(policy, alignment_directions(policy, base), select="threshold", threshold=0.75, projector="fro2")
    assert b_of(policy, "q_proj").tolist() == [[1.0], [1.0]]  # VVᵀ/‖V‖² = the projector for this rank-one V


def test_safelora_number_mode_projects_the_k_least_similar():
    assert sorted(selected({"a": 0.9, "b": 0.2, "c": 0.7, "d": 0.4}, "number", 2, 0.5)) == ["b", "d"]
    assert sorted(selected({"a": 0.9, "b": 0.2, "c": 0.7, "d": 0.4}, "threshold", 2, 0.75)) == ["b", "c", "d"]
    with pytest.raises(ConfigError, match="posthoc.select"):
        selected({"a": 0.1}, "top", 1, 0.5)


def naive_safelora(w_aligned, w_base, factors, k):
    """The spec's rule, written out: C = VVᵀ/‖V‖_F, cos of CBA and BA, project the k lowest, B ← CB."""
    cos, projected = {}, {}
    for name, (b, a) in factors.items():
        v = w_aligned[name] - w_base[name]
        c = v @ v.T / torch.sqrt((v ** 2).sum())
        x, y = (c @ b @ a).flatten(), (b @ a).flatten()
        cos[name] = round(float(x @ y / (x.norm() * y.norm())), 5)
        projected[name] = c @ b
    chosen = sorted(cos, key=cos.get)[:k]
    return {name: (projected[name] if name in chosen else factors[name][0]) for name in factors}, chosen


def test_safelora_matches_a_naive_reimplementation_on_random_weights():
    gen = torch.Generator().manual_seed(0)
    w_base = {n: torch.randn(4, 5, generator=gen) for n in ("q_proj", "v_proj")}
    w_aligned = {n: w + 0.3 * torch.randn(4, 1, generator=gen) @ torch.randn(1, 5, generator=gen)
                 for n, w in w_base.items()}
    factors = {n: (torch.randn(4, 2, generator=gen), torch.randn(2, 5, generator=gen)) for n in w_base}
    policy = lora_policy(w_aligned, factors, r=2, alpha=8.0)
    report = project(policy, alignment_directions(policy, base_model(w_base)), select="number", num_proj_layers=1)
    expected, chosen = naive_safelora(w_aligned, w_base, factors, k=1)
    assert report["projected"] == chosen
    for name in w_base:
        torch.testing.assert_close(b_of(policy, name), expected[name], rtol=1e-5, atol=1e-6)


def test_direction_refuses_a_base_equal_to_the_aligned_model():
    policy, _ = example_policy()
    same = base_model({"q_proj": V.clone(), "v_proj": torch.tensor([[0.0, 0, 1], [0, 0, 0]])})
    with pytest.raises(ConfigError, match="identical weights in every adapted module"):
        alignment_directions(policy, same)


# ---- AsFT --------------------------------------------------------------------------------------------------------


def bound_asft(policy, base, **kwargs) -> Asft:
    asft = Asft(lam=1.0, **kwargs)
    asft.bind_directions(policy, [d for d in alignment_directions(policy, base) if d.name == "q_proj"])
    return asft


def test_asft_hand_computed_penalty_and_gradients():
    policy, base = example_policy()
    asft = bound_asft(policy, base)
    reg = asft.penalty()
    assert float(reg) == pytest.approx(8.0)  # (I − C)BA = [[0, 0, 0], [−2, 0, −2]]
    reg.backward()
    q = policy.base_model.model.q_proj
    assert q.lora_B["default"].weight.grad.flatten().tolist() == pytest.approx([8.0, 0.0])
    assert q.lora_A["default"].weight.grad.flatten().tolist() == pytest.approx([8.0, 0.0, 8.0])
    policy, base = example_policy()
    assert float(bound_asft(policy, base, include_lora_scale=True).penalty()) == pytest.approx(128.0)  # s = 4
    policy, base = example_policy()
    assert float(bound_asft(policy, base, projector="orth").penalty()) == pytest.approx(4.0)  # the true projector


def test_asft_matches_a_naive_reimplementation_with_gradients():
    gen = torch.Generator().manual_seed(1)
    w_base = {n: torch.randn(6, 4, generator=gen) for n in ("q_proj", "v_proj")}
    w_aligned = {n: w + torch.randn(6, 2, generator=gen) @ torch.randn(2, 4, generator=gen) for n, w in w_base.items()}
    factors = {n: (torch.randn(6, 3, generator=gen), torch.randn(3, 4, generator=gen)) for n in w_base}
    policy = lora_policy(w_aligned, factors, r=3, alpha=6.0)
    asft = Asft(lam=1.0)
    asft.bind_directions(policy, alignment_directions(policy, base_model(w_base)))
    reg = asft.penalty()
    reg.backward()
    # naive: explicit C, I − C and BA, autograd on leaf copies of the factors
    naive_total, leaves = 0.0, {}
    for name, (b, a) in factors.items():
        b, a = b.clone().requires_grad_(), a.clone().requires_grad_()
        leaves[name] = (b, a)
        v = w_aligned[name] - w_base[name]
        m = torch.eye(6) - v @ v.T / v.norm()
        naive_total = naive_total + ((m @ b @ a) ** 2).sum()
    naive_total.backward()
    assert float(reg) == pytest.approx(float(naive_total), rel=1e-5)
    for name, (b, a) in leaves.items():
        module = getattr(policy.base_model.model, name)
        torch.testing.assert_close(module.lora_B["default"].weight.grad, b.grad, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(module.lora_A["default"].weight.grad, a.grad, rtol=1e-4, atol=1e-4)


def test_asft_loss_is_ce_plus_lambda_penalty():
    from pact_lightning.objectives.base import PolicyView

    policy, base = example_policy()
    asft = Asft(lam=0.5)
    asft.bind_directions(policy, alignment_directions(policy, base))
    logits = torch.randn(1, 4, 7)
    view = PolicyView(logits, torch.tensor([[-100, 1, 2, 3]]))
    out = asft(view, None)
    torch.testing.assert_close(out.loss, out.ce + 0.5 * asft.penalty())
    assert float(out.reg) > 0


# ---- Lisa --------------------------------------------------------------------------------------------------------


def lisa_with(params, align_steps=2, finetune_steps=3, rho=1.0, warmup=0.1, alignment_batches=None):
    lisa = Lisa(lam=rho, align_steps=align_steps, finetune_steps=finetune_steps, prox_warmup_frac=warmup)
    policy = nn.ParameterList(params)
    items = alignment_batches or [{"input_ids": torch.tensor([9])}] * 8
    data = types.SimpleNamespace(cycling_batches=lambda rank, world: iter(
        [torch.utils.data.default_collate([item]) for item in items] * 100))
    lisa.bind_alignment_data(policy, data)
    return lisa


def view_stub():
    return types.SimpleNamespace(lse=torch.zeros(1))


def test_lisa_schedule_and_discarded_user_batches():
    lisa = lisa_with([nn.Parameter(torch.zeros(1))])
    states = [lisa.state(t) for t in range(10)]
    assert states == ["align"] * 2 + ["finetune"] * 3 + ["align"] * 2 + ["finetune"] * 3
    user = {"input_ids": torch.tensor([[1]])}
    trained_on_user = [t for t in range(10) if lisa.step_batch(user, t, 10) is user]
    assert trained_on_user == [2, 3, 4, 7, 8, 9]  # the user batches of steps 0, 1, 5, 6 are discarded
    assert Lisa(align_steps=0, finetune_steps=5).state(0) == "finetune"
    with pytest.raises(ConfigError, match="finetune_steps=0"):
        Lisa(align_steps=2, finetune_steps=0)


def test_lisa_proximal_value_gradient_and_warmup():
    theta = nn.Parameter(torch.tensor([1.0, 2.0]))
    lisa = lisa_with([theta])
    lisa.anchor = [torch.zeros(2)]
    user = {"input_ids": torch.tensor([[1]])}
    for t, active in ((0, False), (1, False), (2, True)):  # T = 10: the term is on for t > 1.0
        lisa._state = lisa.state(t)  # no phase switch here: the anchor stays (0, 0)
        lisa.step_batch(user, t, 10)
        reg, _ = lisa.regularizer(view_stub(), None)
        assert lisa.proximal_active() is active
        if active:
            assert float(reg) == pytest.approx(2.5)
            reg.backward()
            assert theta.grad.tolist() == [1.0, 2.0]
        else:
            assert float(reg) == 0.0


def naive_lisa_sgd(theta0, user_target, align_target, k_a, k_f, rho, steps, lr):
    """Plain Bi-State Optimisation from the spec: quadratic losses ½(θ − target)², SGD, the anchor taken at each phase
    start, the proximal term from t > 0.1·T."""
    theta, anchor, state = theta0.clone(), theta0.clone(), None
    for t in range(steps):
        now = "align" if t % (k_a + k_f) < k_a else "finetune"
        if state is not None and now != state:
            anchor = theta.clone()
        state = now
        target = align_target if now == "align" else user_target
        grad = theta - target + (rho * (theta - anchor) if t > 0.1 * steps else 0.0)
        theta = theta - lr * grad
    return theta


@pytest.mark.parametrize("rho", [0.0, 2.0])
def test_lisa_cycle_matches_a_naive_bi_state_loop(rho):
    """k steps through Lisa.step_batch + its regulariser (quadratic "CE" on whichever batch it hands out) give the
    parameters of the naive loop, with and without the proximal term."""
    theta = nn.Parameter(torch.tensor([0.5, -1.0]))
    align_target = torch.tensor([3.0, 3.0])
    lisa = lisa_with([theta], align_steps=2, finetune_steps=3, rho=rho,
                     alignment_batches=[{"target": align_target}] * 4)
    user_batch = {"input_ids": torch.tensor([[1]]), "target": torch.tensor([[-2.0, 1.0]])}
    opt = torch.optim.SGD([theta], lr=0.1)
    steps = 12
    for t in range(steps):
        batch = lisa.step_batch(user_batch, t, steps)
        loss = 0.5 * ((theta - batch["target"][0]) ** 2).sum()
        reg, _ = lisa.regularizer(view_stub(), None)
        opt.zero_grad()
        (loss + lisa.lam * reg).backward()
        opt.step()
    expected = naive_lisa_sgd(torch.tensor([0.5, -1.0]), torch.tensor([-2.0, 1.0]), align_target, 2, 3, rho, steps, 0.1)
    torch.testing.assert_close(theta.detach(), expected)


def test_lisa_anchor_survives_a_checkpoint():
    theta = nn.Parameter(torch.tensor([1.0]))
    lisa = lisa_with([theta])
    lisa.step_batch({"input_ids": torch.tensor([[1]])}, 2, 10)  # A → F: anchored at θ = 1
    theta.data.fill_(5.0)
    state = lisa.checkpoint_state()
    fresh = lisa_with([theta])
    fresh.load_checkpoint_state(state)
    assert fresh.anchor[0].tolist() == [1.0] and fresh._state == "finetune"


# ---- through the apps, on the tiny model -------------------------------------------------------------------------

TWO_STEPS = ["trainer.max_steps=2", "reference.mode=adapter_disabled"]


def test_asft_and_lisa_train_two_steps(tmp_path):
    from runs import logged, run_train

    run_train(tmp_path / "asft", ["method=asft", *TWO_STEPS])
    reg = logged(tmp_path / "asft", "train/reg")
    assert sorted(reg) == [0, 1] and reg[0] == 0.0 < reg[1]  # B = 0 at step 0, then the update leaves span(V)
    run_train(tmp_path / "lisa", ["method=lisa", "align.data.num_samples=16", "trainer.max_steps=6",
                                  "method.objective.align_steps=1", "method.objective.finetune_steps=2"])
    state = logged(tmp_path / "lisa", "train/lisa/align_state")
    assert state == {0: 1.0, 1: 0.0, 2: 0.0, 3: 1.0, 4: 0.0, 5: 0.0}
    # on for t > 0.1·6; each phase is anchored where it starts, so the term is 0 at a phase's first step only
    prox = logged(tmp_path / "lisa", "train/lisa/proximal")
    assert sorted(prox) == [1, 2, 3, 4, 5]
    assert [t for t, v in prox.items() if v > 0] == [2, 5] and prox[1] == prox[3] == prox[4] == 0.0


def test_safelora_posthoc_is_its_own_model_in_train_and_evaluate(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    from runs import run_train
    from test_train import EVAL

    run = tmp_path / "run"
    run_train(run, ["method=sft", "trainer.max_steps=2", "posthoc=safelora", "posthoc.num_proj_layers=2", *EVAL,
                    "eval.diagnostics=false"])
    main = json.loads((run / "results.json").read_text())
    sub = json.loads((run / "posthoc" / "safelora" / "results.json").read_text())
    assert sub["method"] == "sft+safelora" and sub["posthoc"]["num_projected"] == 2
    assert sub["posthoc"]["num_modules"] == 4  # q_proj and v_proj of the tiny model's 2 layers
    assert main["compare"]["sft+safelora"]["final"]["num_prompts"] == main["final"]["num_prompts"]
    assert "sft+safelora-reference" in main["paired"]
    from safetensors.torch import load_file

    trained = load_file(run / "final" / "adapter_model.safetensors")
    projected = load_file(run / "posthoc" / "safelora" / "final" / "adapter_model.safetensors")
    changed = [k for k in trained if not torch.equal(trained[k], projected[k])]
    assert len(changed) == 2 and all("lora_B" in k for k in changed)  # B ← C·B in the 2 selected modules only

    proc = subprocess.run([sys.executable, "-m", "pact_lightning.evaluate", "model=tiny", f"checkpoint={run}/final",
                           "posthoc=safelora", "posthoc.num_proj_layers=2", "logger=csv", *EVAL[1:],
                           f"hydra.run.dir={tmp_path / 'eval'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["posthoc"]["projected"] == sub["posthoc"]["projected"]
    assert evaluated["final"]["harmful_score"] == sub["final"]["harmful_score"]


# ---- Vaccine and Booster (alignment stage) -----------------------------------------------------------------------


def test_vaccine_perturbation_is_normalised_over_all_layers():
    from pact_lightning.defences.vaccine import perturbations

    eps = perturbations([torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])], rho=2.0)
    torch.testing.assert_close(eps[0], torch.tensor([1.2, 0.0]))  # per-layer norms would give [2, 0] and [0, 2]
    torch.testing.assert_close(eps[1], torch.tensor([0.0, 1.6]))


def test_booster_gradient_gap_hand_computed():
    from pact_lightning.defences.booster import harmful_direction_gap

    w = torch.tensor([1.0], requires_grad=True)  # h(w) = ½·2w², α = 0.1: g = 2, w' = 0.9, g' = 1.8
    gap, h, h_after = harmful_direction_gap(lambda: (w ** 2).sum(), [w], alpha=0.1)
    assert 1.0 + 5 * float(gap[0]) == pytest.approx(2.0)  # G = ∇f + λ(g − g') with f = ½w², λ = 5
    assert w.tolist() == [1.0] and float(h) == 1.0 and float(h_after) == pytest.approx(0.81)
    a, b = torch.tensor([3.0], requires_grad=True), torch.tensor([4.0], requires_grad=True)
    gap, _, _ = harmful_direction_gap(lambda: 0.5 * (a ** 2 + b ** 2).sum(), [a, b], alpha=0.5)
    assert [5 * float(gap[0]), 5 * float(gap[1])] == pytest.approx([1.5, 2.0])  # one global norm (‖g‖ = 5)
    assert a.tolist() == [3.0] and b.tolist() == [4.0]  # restored bit for bit


def tiny_lora_policy():
    from omegaconf import OmegaConf

    from helpers import tiny_model_and_tokenizer
    from pact_lightning.models.loading import attach_lora

    model, tok = tiny_model_and_tokenizer(seed=3)
    policy = attach_lora(model.train(), OmegaConf.create({"r": 4, "alpha": 8, "dropout": 0.0,
                                                          "target_modules": ["q_proj", "v_proj", "o_proj"]}))
    gen = torch.Generator().manual_seed(0)
    for n, p in policy.named_parameters():  # B ≠ 0, so every factor has a gradient
        if p.requires_grad:
            p.data.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return policy, len(tok)


def lm_batch(vocab: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (2, 9), generator=gen)
    labels = ids.clone()
    labels[:, :4] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "index": torch.arange(2)}


def naive_ce(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             batch["labels"][:, 1:].reshape(-1), ignore_index=-100)


def one_step_gradients(module, batch) -> dict[str, torch.Tensor]:
    """The gradient the optimiser receives in one real Lightning step (learning rate 0, no clipping)."""
    import lightning as L

    grads = {}

    class Grab(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads.update({n: p.grad.clone() for n, p in pl_module.policy.named_parameters() if p.requires_grad})

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Grab()])
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch], collate_fn=lambda items: items[0]))
    return grads


def sgd_lr0(params):
    return torch.optim.SGD(params, lr=0.0)


def test_vaccine_step_matches_an_explicit_two_pass_computation():
    import copy

    from pact_lightning.defences.vaccine import Vaccine
    from pact_lightning.models.module import PactModule
    from pact_lightning.objectives.sft import SFT

    policy, vocab = tiny_lora_policy()
    naive = copy.deepcopy(policy)
    batch, rho = lm_batch(vocab, 0), 0.5
    module = PactModule(policy, SFT(), None, optimizer=sgd_lr0, step=Vaccine(rho=rho).step(None, None))
    grads = one_step_gradients(module, batch)

    blocks = [m for n, m in naive.named_modules() if n.endswith("self_attn")]
    assert len(blocks) == 2
    acts = {}
    handles = [b.register_forward_hook(lambda m, a, o: acts.__setitem__(m, o[0])) for b in blocks]
    ce = naive_ce(naive, batch)
    for h in handles:
        h.remove()
    g = torch.autograd.grad(ce, [acts[b] for b in blocks])
    norm = torch.sqrt(sum((x ** 2).sum() for x in g))
    eps = {b: rho * x / (norm + 1e-7) for b, x in zip(blocks, g)}
    assert sum(float((e ** 2).sum()) for e in eps.values()) == pytest.approx(rho ** 2, rel=1e-5)
    handles = [b.register_forward_hook(lambda m, a, o: (o[0] + eps[m],) + tuple(o[1:])) for b in blocks]
    naive_ce(naive, batch).backward()
    for h in handles:
        h.remove()
    expected = {n: p.grad for n, p in naive.named_parameters() if p.requires_grad}
    assert set(grads) == set(expected)
    for n in expected:
        torch.testing.assert_close(grads[n], expected[n], rtol=1e-4, atol=1e-6)
    # and the perturbation matters: the unperturbed gradient differs
    plain = copy.deepcopy(naive)
    plain.zero_grad()
    naive_ce(plain, batch).backward()
    assert any(not torch.allclose(p.grad, expected[n], atol=1e-6) for n, p in plain.named_parameters()
               if p.requires_grad)


def test_booster_step_matches_an_explicit_gradient():
    import copy

    from pact_lightning.defences.booster import BoosterStep
    from pact_lightning.models.module import PactModule
    from pact_lightning.objectives.sft import SFT

    policy, vocab = tiny_lora_policy()
    naive = copy.deepcopy(policy)
    batch, harmful, lam, alpha = lm_batch(vocab, 0), lm_batch(vocab, 1), 5.0, 0.1
    module = PactModule(policy, SFT(), None, optimizer=sgd_lr0,
                        step=BoosterStep(iter([harmful] * 3), lam=lam, alpha=alpha))
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    grads = one_step_gradients(module, batch)
    assert all(torch.equal(before[n], p) for n, p in policy.named_parameters())  # θ restored after θ' (lr 0)

    params = [p for p in naive.parameters() if p.requires_grad]
    g = torch.autograd.grad(naive_ce(naive, harmful), params)
    norm = torch.sqrt(sum((x ** 2).sum() for x in g)) + 1e-7
    with torch.no_grad():
        for p, x in zip(params, g):
            p.sub_(alpha * x / norm)
    g_after = torch.autograd.grad(naive_ce(naive, harmful), params)
    with torch.no_grad():
        for p, x in zip(params, g):
            p.add_(alpha * x / norm)
    g_f = torch.autograd.grad(naive_ce(naive, batch), params)
    names = [n for n, p in naive.named_parameters() if p.requires_grad]
    for name, gf, a, b in zip(names, g_f, g, g_after):
        torch.testing.assert_close(grads[name], gf + lam * (a - b), rtol=1e-4, atol=1e-5)


def test_alignment_defences_build_their_own_aligned_model_and_train_two_steps(tmp_path):
    """align/defence=vaccine|booster through the real train app (tiny model, 2 alignment steps, 2 fine-tuning steps):
    each builds its own aligned checkpoint (another cache key than plain alignment SFT) and labels its runs; the
    deprecated spelling align.defense=<name> still works, with a warning, and builds the same model."""
    from runs import run_train

    cache = tmp_path / "cache"
    small = ["align.enabled=true", "align.data.num_samples=16", "align.data.batch_size=8", "align.eval.num_prompts=2",
             "align.eval.max_new_tokens=2", "method=sft", "trainer.max_steps=2", f"paths.cache_dir={cache}"]
    built = {}
    for name, overrides in (("none", []), ("vaccine", ["align/defence=vaccine"]),
                            ("booster", ["align/defence=booster", "align.defence.num_samples=8"])):
        run_train(tmp_path / name, [*small, *overrides])
        results = json.loads((tmp_path / name / "results.json").read_text())
        built[name] = results["model_weights"]
        report = json.loads((Path(results["model_weights"]) / "alignment.json").read_text())
        assert len(report["losses"]) == 2
        assert report["recipe"].get("defence", {}).get("name") == (None if name == "none" else name)
        assert results["method"] == ("sft" if name == "none" else f"{name}+sft")
    assert len(set(built.values())) == 3
    proc = run_train(tmp_path / "old_spelling", [*small, "align.defense=vaccine"])
    assert "align.defense=vaccine is deprecated" in proc.stderr + proc.stdout
    assert json.loads((tmp_path / "old_spelling" / "results.json").read_text())["model_weights"] == built["vaccine"]
    with pytest.raises(AssertionError, match="align.defense='lisa' is unknown; use one of booster, vaccine"):
        run_train(tmp_path / "bad", [*small, "align.defense=lisa"])


def test_defence_study_composes_every_arm(tmp_path):
    """experiment=defence_study: 9 arms × 3 seeds, seed-major; each arm's point composes to its method and defence."""
    from conftest import compose
    from hydra.utils import get_class
    from pact_lightning.setting import RunSetting

    cfg = compose("train", ["experiment=defence_study"], output_dir=tmp_path)
    params = cfg.hydra.sweeper.params
    arms = params.arm.split(",")
    assert params.seed == "1,2,3" and list(params) == ["seed", "arm"] and len(arms) == 9
    expected = {"sft": ("sft", "safelora"), "pact": ("pact", None), "pact_plain": ("pact_plain", None),
                "kl_full": ("kl_full", None), "tokenwise": ("tokenwise", None), "lisa": ("lisa", None),
                "asft": ("asft", None), "vaccine_sft": ("vaccine+sft", None), "booster_sft": ("booster+sft", None)}
    assert sorted(arms) == sorted(expected)
    for arm in arms:
        point = compose("train", ["experiment=defence_study", f"arm={arm}", "seed=2"], output_dir=tmp_path)
        assert RunSetting.from_config(point).method == expected[arm][0]
        assert (get_class(point.posthoc._target_).name if point.get("posthoc") else None) == expected[arm][1]
        assert point.compare_with == [] and point.data.num_samples == 200 and point.seed == 2


def test_booster_refuses_harmful_data_that_is_the_attacks_poison(tmp_path):
    """Booster's harmful rows must not be the poison candidates: refused before the alignment stage runs."""
    from runs import train_command
    import subprocess

    from conftest import ROOT

    proc = subprocess.run(train_command(tmp_path / "run", [
        "align.enabled=true", "align/defence=booster", "align.defence.harmful.split=poison",
        f"paths.cache_dir={tmp_path / 'cache'}"]), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "align.defence.harmful (offline/harmful/poison:compliant) shares" in proc.stderr
    assert "the poison source data.harmful" in proc.stderr
    assert not (tmp_path / "cache" / "aligned").exists()  # nothing was aligned


def test_a_model_without_pre_alignment_weights_is_refused_with_the_key_to_set():
    from omegaconf import OmegaConf

    from pact_lightning.defences.base_weights import load_directions

    no_base = OmegaConf.create({"name": "llama_chat", "pretrained": "some/chat-model", "base": None, "lora": None})
    with pytest.raises(ConfigError, match=r"method=asft needs the pre-alignment weights W_base .*set model\.base"):
        load_directions(None, no_base, "method=asft")


def test_asft_penalty_is_float32_under_bf16_autocast():
    policy, base = example_policy()
    asft = bound_asft(policy, base)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reg = asft.penalty()
    assert reg.dtype == torch.float32 and float(reg) == pytest.approx(8.0)


def test_lisa_resumes_its_alignment_data_where_it_stopped():
    items = [{"input_ids": torch.tensor([i])} for i in range(6)]
    lisa = lisa_with([nn.Parameter(torch.zeros(1))], alignment_batches=items)
    user = {"input_ids": torch.tensor([[99]])}
    drawn = [int(lisa.step_batch(user, t, 10)["input_ids"]) for t in (0, 1)]  # two alignment steps
    fresh = lisa_with([nn.Parameter(torch.zeros(1))], alignment_batches=items)
    fresh.load_checkpoint_state(lisa.checkpoint_state())
    assert drawn == [0, 1] and int(fresh.step_batch(user, 5, 10)["input_ids"]) == 2  # not item 0 again
    with pytest.raises(RuntimeError, match="no Lisa state"):
        fresh.load_checkpoint_state({})


def test_defences_that_read_lora_parameters_refuse_sharded_strategies_and_posthoc_is_checked_before_fit(tmp_path):
    from conftest import compose
    from pact_lightning import build

    cfg = compose("train", ["model=tiny", "method=asft", "trainer=fsdp", "~experiment"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="method=asft reads the LoRA parameters themselves"):
        build.objective(cfg, cfg.model, None, None, None)
    cfg = compose("train", ["model=tiny", "posthoc=safelora", "posthoc.select=top", "~experiment"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="posthoc.select='top' is not one of the options; use one of number, threshold"):
        build.posthoc(cfg)
    cfg = compose("train", ["model=tiny", "posthoc=safelora", "~experiment"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="posthoc=safelora edits the trained LoRA adapter"):
        build.check_posthoc(build.posthoc(cfg), cfg.model, nn.Linear(2, 2))


def test_vaccine_removes_its_perturbation_after_backward():
    from pact_lightning.defences.vaccine import VaccineStep
    from pact_lightning.models.module import PactModule
    from pact_lightning.objectives.sft import SFT

    policy, vocab = tiny_lora_policy()
    one_step_gradients(PactModule(policy, SFT(), None, optimizer=sgd_lr0, step=VaccineStep(0.5)), lm_batch(vocab, 0))
    assert all(not m._forward_hooks for n, m in policy.named_modules() if n.endswith("self_attn"))


def test_lisa_cycles_through_the_alignment_stages_own_examples_whatever_the_runs_seed(tmp_path, smollm2_tokenizer):
    """method.alignment_data=null: the examples the alignment stage trained on (its seed, its length), not a new draw
    per run seed — a draw at seed 2 of the embedded recipe held a StrongREJECT prompt longer than the stage's 160
    tokens, and the run stopped."""
    from conftest import compose
    from pact_lightning import alignment, build

    overrides = ["model=tiny", "method=lisa", "align.data.num_samples=40", "data.max_length=96"]
    stage = alignment.alignment_data(compose("train", overrides, tmp_path).align.data, smollm2_tokenizer, seed=42)
    stage.setup("fit")
    for seed in (1, 2):
        cfg = compose("train", overrides + [f"seed={seed}"], tmp_path)
        data = build.DefenceInputs(cfg, cfg.model, None, smollm2_tokenizer).alignment_data()
        assert data.fingerprint() == stage.fingerprint() and data.max_length == 160
    own = compose("train", overrides + ["seed=2", "method.alignment_data=${align.data}"], tmp_path)
    drawn = build.DefenceInputs(own, own.model, None, smollm2_tokenizer).alignment_data()  # a block of its own: the
    # run's seed and data.max_length
    assert drawn.max_length == 96 and drawn.ledger["seed"] == 2
