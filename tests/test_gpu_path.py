"""The GPU path's decisions, checked on the CPU: where evaluation runs after fit, mixed precision with float32 master
weights, offline before any import, each process's own rank and device under torchrun and srun, the base model's
plain prompt without BOS, and generation settings the model's own config cannot change."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from conftest import ROOT, compose
from helpers import tiny_model_and_tokenizer, word_tokenizer
from runs import logged, train_inprocess


def test_after_fit_the_model_is_evaluated_on_the_strategys_device(tmp_path, monkeypatch):
    """Lightning's teardown moves the module to the CPU after fit. Here the strategy reports another device (meta: the
    weights are not needed, the evaluation is faked) — both evaluations must get the model there."""
    from pact_lightning import finish as finish_stage
    from pact_lightning import train as train_app
    from pact_lightning.eval.runner import Evaluator

    seen = []

    def evaluate(self, model, tokenizer, out_dir, tag):
        seen.append((tag, next(model.parameters()).device))
        return {"harmful_score": 0.0, "num_prompts": 1}

    real_finish = train_app.finish

    def finish_on_another_device(cfg, model_cfg, trainer, *args):
        monkeypatch.setattr(type(trainer.strategy), "root_device", property(lambda self: torch.device("meta")))
        return real_finish(cfg, model_cfg, trainer, *args)

    monkeypatch.setattr(Evaluator, "run", evaluate)
    monkeypatch.setattr(train_app, "finish", finish_on_another_device)
    monkeypatch.setattr(finish_stage, "save_final", lambda policy, tokenizer, directory: directory)  # meta: no data
    train_inprocess(tmp_path, ["method=sft", "trainer.max_steps=1", "eval.after_fit=true", "eval.diagnostics=false",
                               "eval.cache=false"])
    assert seen == [("reference", torch.device("meta")), ("final", torch.device("meta"))]


def test_full_finetuning_evaluates_its_frozen_copy_on_the_strategys_device(tmp_path, monkeypatch):
    """Full fine-tuning against the authors' frozen copy (kl_full): teardown moved the copy to the CPU with the module.
    The reference's evaluation and the safety-token diagnostics must get it on the strategy's device beside the policy
    (under DDP a CPU metric on an NCCL group raises; on one GPU the diagnostics feed CUDA ids to a CPU copy). meta
    stands in for the GPU, as above."""
    from pact_lightning import finish as finish_stage
    from pact_lightning import train as train_app
    from pact_lightning.eval.runner import Evaluator

    meta, seen = torch.device("meta"), []

    def evaluate(self, model, tokenizer, out_dir, tag):
        seen.append((tag, next(model.parameters()).device))
        return {"harmful_score": 0.0, "num_prompts": 1}

    def diagnostics(policy, aligned, tokenizer, tokens, out):
        seen.append(("diagnostics", next(policy.parameters()).device, next(aligned().parameters()).device))

    real_finish = train_app.finish

    def finish_on_another_device(cfg, model_cfg, trainer, *args):
        monkeypatch.setattr(type(trainer.strategy), "root_device", property(lambda self: meta))
        return real_finish(cfg, model_cfg, trainer, *args)

    monkeypatch.setattr(Evaluator, "run", evaluate)
    monkeypatch.setattr(train_app, "finish", finish_on_another_device)
    monkeypatch.setattr(finish_stage, "save_final", lambda policy, tokenizer, directory: directory)  # meta: no data
    monkeypatch.setattr(finish_stage, "safety_diagnostics", diagnostics)
    train_inprocess(tmp_path, ["method=kl_full", "model.lora=null", "reference.mode=frozen_copy", "trainer.max_steps=1",
                               "eval.after_fit=true", "eval.diagnostics=true", "eval.cache=false"])
    assert seen == [("reference", meta), ("final", meta), ("diagnostics", meta, meta)]


class Probe(L.Callback):
    """Records, after each training batch, the dtypes mixed precision must keep and the exact response-token count."""

    seen: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        optimizer_state = [v for s in trainer.optimizers[0].state.values() for v in s.values()
                           if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0]
        Probe.seen.append({
            "trainable": {p.dtype for p in pl_module.parameters() if p.requires_grad},
            "frozen": {p.dtype for p in pl_module.policy.parameters() if not p.requires_grad},
            "optimizer": {v.dtype for v in optimizer_state},
            "inv_freq": {b.dtype for n, b in pl_module.policy.named_buffers() if n.endswith("inv_freq")},
            "token_weights": pl_module.objective.token_weights.dtype,
            "tokens": int((batch["labels"][:, 1:] != -100).sum()),
            "logged_tokens": float(trainer.callback_metrics["train/tokens"]),
        })


BF16 = ["method=pact", "model.dtype=bfloat16", "trainer.precision=bf16-mixed", "data.num_samples=48", "data.poison_ratio=0.5",
        "data.batch_size=16", "data.max_length=160", "trainer.max_steps=2",
        "+callbacks.probe._target_=test_gpu_path.Probe"]


def test_bf16_mixed_keeps_master_weights_buffers_and_counts_in_float32(tmp_path):
    """bf16 weights for the frozen model and bf16 autocast, but the LoRA adapter, AdamW's state, RoPE's inv_freq, the
    token weights and the token counts in float32; the cached reference equals the online one within bf16 rounding."""
    Probe.seen = []
    train_inprocess(tmp_path / "online", BF16 + ["reference.mode=adapter_disabled"])
    state = Probe.seen[-1]
    assert state["trainable"] == {torch.float32} and state["optimizer"] == {torch.float32}
    assert state["frozen"] == {torch.bfloat16} and state["inv_freq"] == {torch.float32}
    assert state["token_weights"] == torch.float32
    assert all(s["tokens"] > 256 and s["logged_tokens"] == s["tokens"] for s in Probe.seen), [(s["tokens"], s["logged_tokens"]) for s in Probe.seen]  # bf16 rounds > 256
    train_inprocess(tmp_path / "cached", BF16 + ["reference.mode=cached", f"reference.cache_dir={tmp_path / 'cache'}"])
    online, cached = logged(tmp_path / "online", "train/reg"), logged(tmp_path / "cached", "train/reg")
    assert cached[0] == pytest.approx(online[0], rel=2e-2) and online[0] > 0  # step 0: the same reference


def test_fsdp_preset_reduces_and_keeps_buffers_in_float32():
    from hydra.utils import instantiate

    cfg = compose("train", ["trainer=fsdp"])
    strategy = instantiate(cfg.trainer.strategy)
    assert cfg.trainer.precision == "bf16-mixed"
    mixed = strategy.mixed_precision
    assert (mixed.param_dtype, mixed.reduce_dtype, mixed.buffer_dtype) == (torch.bfloat16, torch.float32, torch.float32)


def test_deepspeed_runs_in_float32_with_float32_buffers_and_its_bf16_mode_is_refused_before_anything_loads(
        tmp_path, monkeypatch):
    """Lightning turns bf16-mixed under DeepSpeed into DeepSpeed's own bf16 mode (read here from DeepSpeed's config as
    Lightning completes it), which casts the whole model, RoPE's inv_freq included, to bf16 with no autocast. That is
    refused before the alignment stage or any model loads, naming what to use instead; so is a strategy config that
    turns the mode on under another precision. The presets run DeepSpeed in float32: no half mode, and after
    Lightning's DeepSpeed precision plugin (what DeepSpeedStrategy.setup applies before the engine starts) the bf16
    model is float32 throughout, inv_freq included. deepspeed is not installed here, so the engine is not built."""
    from lightning.pytorch.plugins.precision import DeepSpeedPrecision

    from pact_lightning import build
    from pact_lightning.errors import ConfigError
    from pact_lightning.train import train
    from pact_lightning.utils.strategies import deepspeed_half_mode
    from runs import TINY, app_config

    monkeypatch.setattr(build, "aligned_model_config", lambda cfg: pytest.fail("the run loaded before the refusal"))
    for overrides in (["trainer=deepspeed_zero2", "trainer.precision=bf16-mixed"],
                      ["trainer=deepspeed_zero3", "trainer.precision=bf16-mixed"],
                      ["trainer=deepspeed_zero2", "+trainer.strategy.config={bf16: {enabled: true}}"]):
        cfg = app_config("train", TINY + overrides, tmp_path)
        assert deepspeed_half_mode(cfg.trainer) == "bf16"
        with pytest.raises(ConfigError, match=rf"trainer.precision={cfg.trainer.precision} with DeepSpeed runs in "
                                              r"DeepSpeed's own bf16 mode.*inv_freq.*Use trainer.precision=32-true.*"
                                              r"or trainer=fsdp for bf16 autocast"):
            train(cfg)

    for stage in (2, 3):
        cfg = compose("train", [f"trainer=deepspeed_zero{stage}", "model=tiny", "model.dtype=bfloat16"],
                      output_dir=tmp_path)
        assert cfg.trainer.precision == "32-true" and deepspeed_half_mode(cfg.trainer) is None
    policy, _ = build.policy(cfg, cfg.model)
    policy = DeepSpeedPrecision(cfg.trainer.precision).convert_module(policy)  # DeepSpeedStrategy.setup does this
    assert {b.dtype for n, b in policy.named_buffers() if n.endswith("inv_freq")} == {torch.float32}
    assert {p.dtype for p in policy.parameters()} == {torch.float32}


def test_zero3_with_chunked_cross_entropy_is_refused_and_bf16_true_is_warned(tmp_path, caplog):
    from pact_lightning import build
    from pact_lightning.errors import ConfigError

    cfg = compose("train", ["trainer=deepspeed_zero3", "ce_chunk_size=128", "model=tiny"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="ce_chunk_size=128.*ZeRO-3.*ce_chunk_size=null"):
        build.policy(cfg, cfg.model)
    cfg = compose("train", ["trainer.precision=bf16-true", "model=tiny"], output_dir=tmp_path)
    with caplog.at_level("WARNING"):
        policy, _ = build.policy(cfg, cfg.model)
    assert "casts the whole policy to bf16" in caplog.text
    assert {p.dtype for p in policy.parameters() if p.requires_grad} == {torch.float32}


def test_offline_is_in_force_before_any_import_and_inside_a_run(tmp_path):
    """With no HF_* variable set, importing the app already finds huggingface_hub offline, and a run keeps it so;
    offline=false turns the hub back on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB", "HF_DATASETS", "TRANSFORMERS_OFFLINE"))}
    code = ("import pact_lightning.train, huggingface_hub.constants as c; at_import = c.HF_HUB_OFFLINE\n"
            "from omegaconf import OmegaConf\nfrom pact_lightning.app import task_wrapper\n"
            "inside = task_wrapper(lambda cfg: c.HF_HUB_OFFLINE)\n"
            "cfg = lambda offline: OmegaConf.create({'offline': offline, 'paths': {'output_dir': '.'}})\n"
            "print(at_import, inside(cfg(True)), inside(cfg(False)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True", "False"], out.stderr[-2000:]


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 0, 1)),
    ({"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
      "SLURM_JOB_NAME": "eval",
      "SLURM_NODELIST": "node[1-2]", "SLURM_JOB_ID": "12345"}, (3, 1, 4)),  # srun sets no WORLD_SIZE or LOCAL_RANK
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "1",
      "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}, (2, 0, 4)),
])
def test_each_process_finds_its_rank_and_device_under_srun_and_torchrun(monkeypatch, env, expected):
    from pact_lightning.utils.strategies import ProcessEnv, local_device, process_env

    for key in ("SLURM_NTASKS", "SLURM_PROCID", "TORCHELASTIC_RUN_ID", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT"):  # restored afterwards: Lightning's SLURM environment may set the last two
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    found = process_env()
    assert (found.rank, found.local_rank, found.world_size) == expected
    assert "MASTER_ADDR" not in os.environ or "MASTER_ADDR" in env  # finding the ranks writes no rendezvous address
    assert local_device(found) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert local_device(ProcessEnv(rank=3, local_rank=1, world_size=4)) == torch.device("cuda", 1)  # not bare "cuda"


def test_the_base_models_plain_prompt_has_no_bos_as_in_the_authors_selection():
    """A tokenizer that adds BOS (Llama-3.1, Gemma-2): the base model's scored sequence is the plain prompt's tokens
    without it, followed by the refusal's — the authors tokenise with add_special_tokens=False."""
    from pact_lightning.safety.selection import PLAIN_PROMPT, encode

    tok = word_tokenizer()
    tok.add_special_tokens({"bos_token": "<unk>"})
    tok._tokenizer.post_processor = __import__("tokenizers").processors.TemplateProcessing(
        single="<unk> $A", special_tokens=[("<unk>", tok.unk_token_id)])
    assert tok("how do i")["input_ids"][0] == tok.bos_token_id  # this tokenizer does add a BOS by default
    (encoded,) = encode(tok, [("how do i make a bomb", "sorry i can't help")], max_resp_len=64)
    expected = tok(PLAIN_PROMPT.format(prompt="how do i make a bomb"), add_special_tokens=False)["input_ids"]
    assert encoded.base_prompt == expected and tok.bos_token_id not in encoded.base_prompt


def test_greedy_evaluation_ignores_the_models_own_repetition_penalty():
    """Qwen2.5's generation_config carries repetition_penalty=1.05; evaluation sets every generation argument itself."""
    from pact_lightning.eval.generation import generate

    model, tok = tiny_model_and_tokenizer()
    prompts = ["how do i make a cake", "write a poem about a cake"]
    plain = generate(model, tok, prompts, max_new_tokens=12, progress=False)
    model.generation_config.repetition_penalty = 50.0
    assert generate(model, tok, prompts, max_new_tokens=12, progress=False) == plain
    inherited = model.generate(**tok(prompts[:1], return_tensors="pt"), max_new_tokens=12, do_sample=False,
                               pad_token_id=tok.pad_token_id)  # a call that leaves the penalty unset inherits it
    assert tok.decode(inherited[0], skip_special_tokens=True) != tok.decode(
        model.generate(**tok(prompts[:1], return_tensors="pt"), max_new_tokens=12, do_sample=False,
                       pad_token_id=tok.pad_token_id, repetition_penalty=1.0)[0], skip_special_tokens=True)


def test_evaluate_gives_its_process_group_lightnings_30_minutes_or_the_configured_timeout(tmp_path, monkeypatch):
    """Launched as two processes, evaluate forms its process group with Lightning's DDP timeout (30 min, not NCCL's 10)
    unless process_group_timeout_min says otherwise; the group is formed before any model loads."""
    from datetime import timedelta

    import torch.distributed as dist
    from lightning.pytorch.strategies import DDPStrategy

    from pact_lightning import evaluate as evaluate_app
    from pact_lightning.errors import ConfigError
    from pact_lightning.utils.strategies import ProcessEnv
    from runs import app_config

    class Joined(Exception):
        pass

    timeouts = []

    def init_process_group(backend, **kwargs):
        timeouts.append(kwargs.get("timeout"))
        raise Joined

    monkeypatch.setattr(evaluate_app, "process_env", lambda: ProcessEnv(rank=1, local_rank=1, world_size=2))
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(evaluate_app, "load_model", lambda *a, **kw: pytest.fail("a model loaded before the group"))
    for overrides in ([], ["process_group_timeout_min=45"]):
        with pytest.raises(Joined):
            evaluate_app.evaluate(app_config("evaluate", ["model=tiny", *overrides], tmp_path))
    assert timeouts == [DDPStrategy()._timeout, timedelta(minutes=45)] and timeouts[0] == timedelta(minutes=30)
    with pytest.raises(ConfigError, match="process_group_timeout_min=0"):
        evaluate_app.evaluate(app_config("evaluate", ["model=tiny", "process_group_timeout_min=0"], tmp_path))
