"""The reference cache (reference.mode=cached): equality with the online reference, invalidation, no reference model."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import PreTrainedModel

from conftest import CONF
from helpers import ListSource
from pact_lightning import build
from pact_lightning.data.datamodule import PoisonMixDataModule
from pact_lightning.data.types import Example
from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.models import reference_cache
from pact_lightning.models.loading import load_model
from pact_lightning.models.module import PactModule
from pact_lightning.models.reference import AdapterDisabled, FrozenCopy, aligned_weights
from pact_lightning.models.reference_cache import CachedReference, assemble, compute_rows, fingerprint
from pact_lightning.objectives.base import PolicyView
from pact_lightning.objectives.kl_full import KLFull
from pact_lightning.objectives.pact import Pact
from pact_lightning.objectives.pact_plain import PactPlain
from pact_lightning.objectives.tokenwise import Tokenwise
from pact_lightning.safety.tokens import SafetyTokens
from pact_lightning.utils.fingerprint import digest, numerics

K = 8


def sources():
    words = "the model reads a review and answers whether it is positive or negative".split()
    benign = [Example(" ".join(words[: 3 + i % 9]), " ".join(words[i % 5: i % 5 + 2 + i % 7]), "benign", i)
              for i in range(30)]
    harmful = [Example(f"Explain harmful thing number {i}", "Sure, here is how to do it, step by step." * (1 + i % 3),
                       "harm", i) for i in range(10)]
    return ListSource("benign", benign), ListSource("harm", harmful)


def datamodule(tokenizer, num_samples=12, max_length=64, seed=0, batch_size=4):
    benign, harmful = sources()
    dm = PoisonMixDataModule(benign, harmful, num_samples=num_samples, poison_ratio=0.25, batch_size=batch_size,
                             max_length=max_length).attach(tokenizer, seed=seed)
    dm.setup("fit")
    return dm


def model_cfg(lora=True):
    cfg = OmegaConf.create({"paths": {"cache_dir": os.environ["PACT_CACHE"]},
                            "model": OmegaConf.load(CONF / "model" / "tiny.yaml")})
    if not lora:
        cfg.model.lora = None
    return cfg.model


def tiny_policy(lora=True):
    """The tiny model with a LoRA adapter whose B matrices are non-zero, so policy ≠ reference."""
    policy, tokenizer = load_model(model_cfg(lora))
    if lora:
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
    return policy, tokenizer


def safety_tokens(seed=0, k=K):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(1000, generator=g)[:k]
    d = torch.randn(k, generator=g)
    return SafetyTokens(ids=ids, weights=d / d.norm(), tokens=[str(i) for i in ids.tolist()], m=torch.ones(k), d=d)


OBJECTIVES = {
    "pact": lambda: Pact(safety_tokens=safety_tokens()),
    "pact_rest_mass": lambda: Pact(safety_tokens=safety_tokens(), include_rest_mass=True, temperature=2.0),
    "pact_plain": lambda: PactPlain(safety_tokens=safety_tokens()),
    "tokenwise": lambda: Tokenwise(),
}


@pytest.fixture(scope="module")
def lora_setup():
    policy, tokenizer = tiny_policy()
    return policy, tokenizer, datamodule(tokenizer)


def batches(dm, order, size=5):
    """Batches in another order and composition (so other padding widths) than the build used."""
    return list(dm.batches(order, size))


def assert_views_equal(cached, online, fields):
    for name in fields:
        a, b = getattr(cached, name), getattr(online, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_cached_reference_equals_the_adapter_disabled_reference(tmp_path, lora_setup, name):
    policy, _, dm = lora_setup
    objective = OBJECTIVES[name]()
    cached = CachedReference(tmp_path, dm)
    cached.prepare(policy, objective)
    online = AdapterDisabled(policy)
    order = torch.randperm(dm.num_samples, generator=torch.Generator().manual_seed(1)).tolist()
    for batch in batches(dm, order):
        with torch.no_grad():
            view = PolicyView(policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                              batch["labels"])
        ref_cached, ref_online = cached(batch, view, objective), online(batch, view, objective)
        assert_views_equal(ref_cached, ref_online, objective.reference_fields)
        loss_cached, loss_online = objective(view, ref_cached), objective(view, ref_online)
        assert loss_cached.reg != 0
        torch.testing.assert_close(loss_cached.loss, loss_online.loss, rtol=0, atol=1e-5)


def test_full_finetuning_cache_keeps_the_aligned_weights_after_the_policy_moves(tmp_path):
    """Without LoRA the cache is built from the policy before training; it must still equal a frozen copy of the
    aligned model after the policy's weights have changed."""
    policy, tokenizer = tiny_policy(lora=False)
    frozen = FrozenCopy(copy.deepcopy(policy))
    dm = datamodule(tokenizer)
    objective = OBJECTIVES["pact"]()
    cached = CachedReference(tmp_path, dm)
    cached.prepare(policy, objective)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for batch in batches(dm, list(range(dm.num_samples))[::-1]):
        view = PolicyView(policy(input_ids=batch["input_ids"]).logits.detach(), batch["labels"])
        assert_views_equal(cached(batch, view, objective), frozen(batch, view, objective), objective.reference_fields)


def test_the_cache_is_built_as_the_strategy_trains_and_records_its_device_and_autocast(tmp_path):
    """Lightning's precision plugin converts the model only after the setup hook that builds the cache: DeepSpeed's
    32-true makes a bf16 model float32. The cache is built after that conversion, so it equals the online reference of
    the policy the strategy trains; its key records the build's device type and autocast (here from a bf16-mixed
    plugin), so a CPU or float32 cache is never what a GPU or autocast run reads."""
    from lightning.pytorch.plugins.precision import DeepSpeedPrecision, MixedPrecision
    from safetensors import safe_open

    cfg = model_cfg()
    cfg.dtype = "bfloat16"
    policy, tokenizer = load_model(cfg)
    dm, objective = datamodule(tokenizer), OBJECTIVES["pact"]()

    def built(plugin, directory) -> tuple[CachedReference, dict]:
        strategy = reference_cache._SingleProcess(torch.device("cpu"))
        strategy.precision_plugin = plugin
        ref = CachedReference(directory, dm)
        ref.prepare(policy, objective, strategy)
        with safe_open(str(ref.path), framework="pt") as f:
            return ref, json.loads(f.metadata()["fingerprint"])

    cached, fp = built(DeepSpeedPrecision("32-true"), tmp_path / "deepspeed")
    assert {p.dtype for p in policy.parameters()} == {torch.float32} and (fp["device"], fp["autocast"]) == ("cpu", None)
    online = AdapterDisabled(policy)
    for batch in batches(dm, list(range(dm.num_samples))):
        view = PolicyView(policy(input_ids=batch["input_ids"]).logits.detach(), batch["labels"])
        assert_views_equal(cached(batch, view, objective), online(batch, view, objective), objective.reference_fields)
    _, fp = built(MixedPrecision("bf16-mixed", "cpu"), tmp_path / "mixed")
    assert (fp["device"], fp["autocast"]) == ("cpu", "torch.bfloat16")


def test_cache_stores_exactly_the_objective_fields(tmp_path, lora_setup):
    policy, _, dm = lora_setup
    for name, fields in (("pact", {"subset_full", "subset_post"}), ("pact_plain", {"subset_full"}),
                         ("tokenwise", {"target_logprob"}),
                         ("pact_rest_mass", {"subset_full", "subset_post", "lse_full", "lse_post"})):
        cached = CachedReference(tmp_path, dm)
        cached.prepare(policy, OBJECTIVES[name]())
        assert set(cached.tensors) == fields, name
        assert cached.tensors[min(fields)].shape[0] == cached.offsets[-1]


def test_sharded_build_assembles_to_the_single_process_cache(lora_setup):
    """What each DDP rank computes (every world-th example), merged, equals one process computing everything."""
    policy, tokenizer, dm = lora_setup
    objective, n = OBJECTIVES["pact"](), dm.num_samples
    with aligned_weights(policy) as model:
        single = assemble([compute_rows(model, dm, list(range(n)), objective, 4, "cpu")], n)
        parts = [compute_rows(model, dm, list(range(r, n, 3)), objective, 2, "cpu") for r in (2, 0, 1)]
    merged = assemble(parts, n)
    assert merged.keys() == single.keys()
    for name in single:
        torch.testing.assert_close(merged[name], single[name], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ invalidation

def test_fingerprint_changes_with_every_input_and_only_with_them(lora_setup):
    policy, tokenizer, dm = lora_setup
    pact = OBJECTIVES["pact"]()
    base = digest(fingerprint(policy, pact, dm))

    def key(policy=policy, objective=pact, dm=dm, precision="32-true", computes=None):
        return digest(fingerprint(policy, objective, dm, precision, computes))

    # Inputs that do not change the reference's numbers share the cache.
    assert key() == base
    assert key(objective=Pact(lam=0.3, safety_tokens=safety_tokens(), gate_alpha=5.0)) == base  # λ, gate constants
    assert key(objective=Pact(safety_tokens=safety_tokens(), temperature=3.0)) == base  # no log-normaliser stored
    lora_moved = copy.deepcopy(policy)
    with torch.no_grad():
        next(p for n, p in lora_moved.named_parameters() if "lora_A" in n).add_(1.0)
    assert key(policy=lora_moved) == base  # the adapter is not part of the reference

    changed = {}
    weights_moved = copy.deepcopy(policy)
    with torch.no_grad():
        weights_moved.get_base_model().model.layers[0].mlp.up_proj.weight.mul_(1.01)
    changed["reference weights"] = key(policy=weights_moved)
    changed["safety-token set"] = key(objective=Pact(safety_tokens=safety_tokens(seed=1)))
    changed["fields"] = key(objective=PactPlain(safety_tokens=safety_tokens()))
    changed["fields + lse at T=2"] = key(objective=Pact(safety_tokens=safety_tokens(), include_rest_mass=True))
    changed["temperature (lse stored)"] = key(objective=Pact(safety_tokens=safety_tokens(), include_rest_mass=True,
                                                             temperature=3.0))
    changed["data ledger"] = key(dm=datamodule(tokenizer, seed=1))
    changed["max length"] = key(dm=datamodule(tokenizer, max_length=48))
    changed["precision"] = key(precision="bf16-mixed")
    changed["device"] = key(computes=numerics("cuda"))  # what a GPU build records (utils.fingerprint.numerics)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        changed["autocast"] = key()  # by default: the policy's device and the autocast in force
    other_template = copy.deepcopy(tokenizer)
    other_template.chat_template = tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    changed["chat template"] = key(dm=datamodule(other_template))
    other_vocab = copy.deepcopy(tokenizer)
    other_vocab.add_tokens(["<pact_test_token>"])
    changed["tokenizer"] = key(dm=datamodule(other_vocab))
    unchanged = [name for name, k in changed.items() if k == base]
    assert not unchanged, f"the cache key ignores: {unchanged}"
    assert len(set(changed.values())) == len(changed)


def test_a_match_reuses_a_mismatch_rebuilds_and_a_corrupt_file_is_refused(tmp_path, lora_setup, monkeypatch):
    policy, _, dm = lora_setup
    builds = []
    real = reference_cache.compute_rows
    monkeypatch.setattr(reference_cache, "compute_rows", lambda *a, **kw: builds.append(1) or real(*a, **kw))

    def prepare(objective):
        ref = CachedReference(tmp_path, dm)
        ref.prepare(policy, objective)
        return ref

    first = prepare(OBJECTIVES["pact"]())
    assert len(builds) == 1 and first.path.is_file()
    assert prepare(OBJECTIVES["pact"]()).path == first.path and len(builds) == 1  # match: reused, no forward pass
    other = prepare(Pact(safety_tokens=safety_tokens(seed=2)))
    assert len(builds) == 2 and other.path != first.path  # mismatch: built next to the old file
    first.path.write_bytes(first.path.read_bytes()[:100])  # truncated (e.g. disk full outside the atomic write)
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(first.path))} is truncated or corrupt.*delete it"):
        prepare(OBJECTIVES["pact"]())
    assert len(builds) == 2 and first.path.stat().st_size == 100  # refused, not rebuilt over
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({first.path.name, other.path.name})  # no temp files


def test_kl_full_cannot_be_cached():
    cfg = OmegaConf.create({"reference": {"mode": "cached"}, "paths": {"cache_dir": "/nonexistent"}})
    with pytest.raises(ConfigError, match="full-vocabulary logits"):
        build.reference(cfg, model_cfg(), object(), KLFull(), None)


# ------------------------------------------------------------------------------------------------ in training

def test_cached_mode_trains_without_any_reference_module(tmp_path, lora_setup):
    policy, tokenizer, _ = lora_setup
    policy = copy.deepcopy(policy)
    dm = datamodule(tokenizer)
    objective = OBJECTIVES["pact"]()
    cfg = OmegaConf.create({"reference": {"mode": "cached", "cache_dir": str(tmp_path / "cache"),
                                          "build_batch_size": None}})
    reference = build.reference(cfg, model_cfg(), policy, objective, dm)
    module = PactModule(policy, objective, reference, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3))
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2 and trainer.callback_metrics["train/reg"] != 0
    assert reference.mode == "cached" and reference.offsets is not None
    assert not any(isinstance(m, PreTrainedModel) for m in reference.modules())
    assert not list(reference.parameters()) and not list(reference.buffers())
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in policy.parameters())
    assert not any(k.startswith("reference.") for k in module.state_dict())


def test_ddp_ranks_build_shards_that_merge_into_the_single_process_cache(tmp_path, lora_setup):
    """Two CPU processes (gloo): each rank computes every 2nd example, rank 0 merges; the file has the same key and
    the same numbers as a single-process build, and no part files are left behind."""
    policy, tokenizer, _ = lora_setup
    objective = OBJECTIVES["pact"]()
    dm = datamodule(tokenizer)
    module = PactModule(copy.deepcopy(policy), objective, CachedReference(tmp_path / "ddp", dm),
                        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    single = CachedReference(tmp_path / "single", datamodule(tokenizer))
    single.prepare(policy, objective)
    (built,) = (tmp_path / "ddp").iterdir()
    assert built.name == single.path.name
    ddp, one = load_file(str(built)), load_file(str(single.path))
    assert ddp.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("trainer,expected", [
    ({}, "cached"), ({"max_steps": -1, "max_epochs": 1}, "cached"), ({"max_steps": 4}, "cached"),
    ({"max_steps": 2, "accumulate_grad_batches": 2}, "cached"), ({"max_steps": 3}, "adapter_disabled"),
    ({"fast_dev_run": True}, "adapter_disabled"), ({"limit_train_batches": 0.5}, "adapter_disabled"),
    ({"limit_train_batches": 4}, "cached"),
])
def test_auto_mode_caches_when_the_run_covers_an_epoch(lora_setup, trainer, expected):
    """16 examples at batch 4 = 4 steps an epoch; the build costs about one epoch of online reference passes."""
    policy = lora_setup[0]
    data = SimpleNamespace(num_samples=16, batch_size=4)
    trainer = {"max_steps": -1, "accumulate_grad_batches": 1, "fast_dev_run": False, "limit_train_batches": 1.0,
               **trainer}
    cfg = OmegaConf.create({"reference": {"mode": "auto", "cache_dir": "/nonexistent", "build_batch_size": None},
                            "trainer": trainer})
    assert build.reference(cfg, model_cfg(), policy, OBJECTIVES["pact"](), data).mode == expected
    assert build.reference(cfg, model_cfg(), policy, KLFull(), data).mode == "adapter_disabled"


def test_the_train_app_in_cached_mode_logs_the_losses_of_the_online_reference(tmp_path):
    from runs import logged, train_inprocess

    common = ["method=pact", "data.num_samples=16", "trainer.max_steps=3"]
    train_inprocess(tmp_path / "online", [*common, "reference.mode=adapter_disabled"])
    train_inprocess(tmp_path / "cached", [*common, "reference.mode=cached", f"reference.cache_dir={tmp_path / 'cache'}"])
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    online, cached = logged(tmp_path / "online"), logged(tmp_path / "cached")
    assert len(online) == 3 and cached == pytest.approx(online, abs=1e-5)
