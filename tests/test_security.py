"""Security: no remote code unless a config asks for it (and then the run says so), no pickle loading of files the user
did not create, and no harmful generations on W&B unless ``eval.log_generations=true``."""

from __future__ import annotations

import ast
import json
import logging
import os
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from runs import train_inprocess

SOURCES = sorted((ROOT / "pact_lightning").rglob("*.py"))
PICKLERS = ("pickle", "cPickle", "dill", "joblib", "cloudpickle", "shelve")


def dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return getattr(node, "id", "?")


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_no_config_turns_trust_remote_code_on():
    presets = sorted(CONF.rglob("*.yaml"))
    on = [str(p.relative_to(ROOT)) for p in presets if "trust_remote_code: true" in p.read_text().lower()]
    assert presets and not on
    for preset in sorted((CONF / "model").glob("*.yaml")):
        assert OmegaConf.load(preset).get("trust_remote_code", False) is False, preset


def test_the_code_never_hardcodes_trust_remote_code_or_unpickles():
    """Every ``trust_remote_code=`` comes from a config; every ``torch.load`` and checkpoint resume is
    ``weights_only=True``; no pickle-family module is imported; numpy never loads pickles."""
    problems = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                problems += [f"{where}: imports {n}" for n in names if n.split(".")[0] in PICKLERS]
            if not isinstance(node, ast.Call):
                continue
            name, kw = dotted(node.func), {k.arg: k.value for k in node.keywords}
            if is_true(kw.get("trust_remote_code")):
                problems.append(f"{where}: trust_remote_code=True")
            if is_true(kw.get("allow_pickle")):
                problems.append(f"{where}: allow_pickle=True")
            loads_checkpoint = name == "torch.load" or name.endswith("load_from_checkpoint") or (
                name.split(".")[-1] in ("fit", "validate", "test", "predict") and "ckpt_path" in kw)
            if loads_checkpoint and not is_true(kw.get("weights_only")):
                problems.append(f"{where}: {name}(...) without weights_only=True")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("trust", [False, True])
def test_trust_remote_code_reaches_transformers_only_when_configured_and_is_logged_first(
        monkeypatch, caplog, smollm2_tokenizer, trust):
    from transformers import LlamaConfig, LlamaForCausalLM

    from pact_lightning.models import loading

    events = []

    def fake(kind, result):
        def from_pretrained(src, **kwargs):
            events.append((kind, kwargs.get("trust_remote_code", False)))
            return result
        return from_pretrained

    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", fake("tokenizer", smollm2_tokenizer))
    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", fake("model", model))
    monkeypatch.setattr(logging.getLogger(loading.__name__), "warning",
                        lambda msg, *args: events.append(("warning", msg % args)))
    cfg = OmegaConf.create({"name": "remote", "pretrained": "someone/remote-model", "dtype": "float32", "lora": None,
                            **({"trust_remote_code": True} if trust else {})})
    loading.load_model(cfg)
    loaded = [e for e in events if e[0] != "warning"]
    assert loaded == [("tokenizer", trust), ("model", trust)]
    warnings = [i for i, e in enumerate(events) if e[0] == "warning" and "trust_remote_code is ON" in e[1]]
    assert bool(warnings) == trust
    if trust:
        assert warnings[0] == 0 and "someone/remote-model" in events[0][1]  # before anything was loaded


class Booby:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resuming_from_a_booby_trapped_checkpoint_runs_no_code(tmp_path):
    marker, ckpt = tmp_path / "code_ran", tmp_path / "untrusted.ckpt"
    torch.save({"state_dict": {}, "loops": Booby(marker)}, ckpt)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train_inprocess(tmp_path / "run", ["method=sft", "trainer.max_steps=1", f"ckpt_path={ckpt}"])
    assert not marker.exists()


def test_evaluating_a_booby_trapped_pytorch_model_bin_runs_no_code(tmp_path, smollm2_tokenizer):
    from transformers import LlamaConfig

    from pact_lightning.models.loading import load_model

    marker, checkpoint = tmp_path / "code_ran", tmp_path / "merged"
    LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2).save_pretrained(checkpoint)
    torch.save({"model.embed_tokens.weight": Booby(marker)}, checkpoint / "pytorch_model.bin")
    cfg = OmegaConf.load(CONF / "model" / "tiny.yaml")
    cfg.cache_dir = cfg.tiny.tokenizer.cache_dir = os.environ["PACT_CACHE"]
    with pytest.raises(Exception, match="(?i)weights.only"):
        load_model(cfg, checkpoint=checkpoint, lora=False)  # what `evaluate checkpoint=<dir>` does
    assert not marker.exists()


@pytest.mark.parametrize("log_generations", [False, True])
def test_generations_reach_wandb_only_with_eval_log_generations(tmp_path, log_generations, monkeypatch):
    """An offline W&B run after a training run with evaluation: none of the evaluation's harmful prompts or answers is
    in any file W&B wrote — the run's folder and W&B's artifact staging copies, which `wandb sync` uploads — unless
    eval.log_generations=true (then they are: the check can see them)."""
    from test_faults import SMALL_EVAL

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))  # where W&B stages artifact files
    train_inprocess(tmp_path, ["method=sft", "trainer.max_steps=1", "logger=many", *SMALL_EVAL,
                               f"eval.log_generations={str(log_generations).lower()}"])
    rows = [json.loads(line) for line in (tmp_path / "generations_final.jsonl").read_text().splitlines()]
    harmful = [r for r in rows if r["kind"] == "harmful"]
    texts = {r["prompt"] for r in harmful} | {r["response"] for r in harmful if len(r["response"]) > 8}
    logged = b"".join(p.read_bytes() for folder in ("wandb", "wandb_data") for p in (tmp_path / folder).rglob("*")
                      if p.is_file())
    assert any(p.is_file() for p in (tmp_path / "wandb_data").rglob("*"))  # the staging copies are looked at
    found = {t for t in texts if t.encode() in logged or json.dumps(t)[1:-1].encode() in logged}
    assert texts and (found == texts if log_generations else not found), sorted(found)[:3]


@pytest.mark.parametrize("trust", [False, True])
def test_judge_models_get_trust_remote_code_only_when_configured_and_log_it_first(monkeypatch, trust):
    import transformers

    from pact_lightning.eval import judges

    events = []

    class Loaded:  # stands in for the judge's tokenizer and model
        pad_token, eos_token = None, "</s>"

        def to(self, device):
            return self

        def eval(self):
            return self

    def fake(kind):
        def from_pretrained(name, **kwargs):
            events.append((kind, kwargs.get("trust_remote_code", False)))
            return Loaded()
        return from_pretrained

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake("tokenizer"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake("model"))
    monkeypatch.setattr(logging.getLogger(judges.__name__), "warning",
                        lambda msg, *args: events.append(("warning", msg % args)))
    judges.GuardJudge("org/guard", trust_remote_code=trust)._load()
    assert [e for e in events if e[0] != "warning"] == [("tokenizer", trust), ("model", trust)]
    warned = [i for i, e in enumerate(events) if e[0] == "warning" and "trust_remote_code is ON" in e[1]]
    assert warned == ([0, 2] if trust else [])  # each before its load
    assert not trust or "org/guard" in events[0][1]
