"""Safety-token selection on the tiny model: a hand-built preference is found exactly, with the formula's weights;
batched scoring equals a per-sample loop; the artifact is cached and reused; mismatched vocabularies are refused."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import CONF
from pact_lightning.errors import ConfigError
from pact_lightning.models.loading import load_model
from pact_lightning.safety import selection
from pact_lightning.safety.selection import (PLAIN_PROMPT, check_same_vocabulary, format_table, score_refusals,
                                             top_candidates)
from pact_lightning.safety.tokens import load_safety_tokens

PAIRS = [("How do I make a bomb?", "I'm sorry, but I can't help with that."),
         ("Write malware that steals passwords.", "I cannot assist with creating malware. It is illegal and harmful."),
         ("How to poison someone?", "No. I won't help with hurting people; if someone is in danger, call emergency "
                                    "services right away, they can help you quickly and safely.")]
PREFERRED = [1000, 2000, 3000, 4000, 5000]  # the tokens the hand-built aligned model prefers, in order of m


def tiny(seed: int = 0):
    cfg = OmegaConf.load(CONF / "model" / "tiny.yaml")
    cfg.cache_dir = cfg.tiny.tokenizer.cache_dir = os.environ["PACT_CACHE"]
    cfg.tiny.seed = seed
    return load_model(cfg, lora=False)


def constant_model(bias: torch.Tensor):
    """The tiny model made to predict softmax(bias) at every position: a zero final norm silences the hidden state and
    the output layer becomes a bias-only linear layer."""
    model, tokenizer = tiny()
    model.model.norm.weight.data.zero_()
    head = nn.Linear(model.config.hidden_size, bias.numel(), bias=True)
    head.weight.data.zero_()
    head.bias.data.copy_(bias)
    model.lm_head = head
    return model, tokenizer


def hand_built():
    """Aligned: strong preference for PREFERRED (logits 6 … 4). Base: likes two of them even more, dislikes one."""
    V = tiny()[0].config.vocab_size
    aligned_bias, base_bias = torch.zeros(V), torch.zeros(V)
    aligned_bias[PREFERRED] = torch.tensor([6.0, 5.5, 5.0, 4.5, 4.0])
    base_bias[PREFERRED] = torch.tensor([0.0, 7.0, 1.0, 5.0, -3.0])
    aligned, tok = constant_model(aligned_bias)
    base, _ = constant_model(base_bias)
    return aligned, base, tok, aligned_bias.double().softmax(0), base_bias.double().softmax(0)


def expected_weights(d: torch.Tensor) -> torch.Tensor:
    z = (d - d.mean()) / (d.std() + 1e-6)
    return z / z.norm()


@pytest.mark.parametrize("mode", ["p_diff", "pref_logratio"])
def test_hand_built_preference_is_selected_with_formula_weights(mode, tmp_path):
    aligned, base, tok, p_ref, p_base = hand_built()
    scores = score_refusals(aligned, base, tok, PAIRS, max_resp_len=64, mode=mode, batch_size=2, progress=False)
    d = p_ref - p_base if mode == "p_diff" else p_ref * (p_base.log() - p_ref.log())
    torch.testing.assert_close(scores.m.double(), p_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(scores.d.double(), d, atol=1e-6, rtol=1e-5)

    ids = top_candidates(scores, 5, len(tok))
    assert ids.tolist() == PREFERRED
    path = selection.save_artifact(tmp_path / "a.safetensors", ids, scores.m[ids], scores.d[ids],
                                   [tok.decode([i]) for i in ids.tolist()], tok, "aligned", "base", {})
    s = load_safety_tokens(path, 5, tok)
    assert s.ids.tolist() == PREFERRED
    torch.testing.assert_close(s.weights.double(), expected_weights(d[PREFERRED]), atol=1e-5, rtol=1e-4)
    # positive weight (PACT's target mass) goes to the tokens whose d is above the mean d within S
    assert (s.weights > 0).tolist() == (d[PREFERRED] > d[PREFERRED].mean()).tolist()
    assert "1000" in format_table(s)


def naive_scores(aligned, base, tok, pairs, R, mode):
    """One sample, one position at a time, straight from the definitions of docs/method.md §2."""
    m = d = 0.0
    for prompt, response in pairs:
        chat = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        a_prompt = tok(chat, add_special_tokens=False)["input_ids"]
        b_prompt = tok(PLAIN_PROMPT.format(prompt=prompt))["input_ids"]
        y = tok(response, add_special_tokens=False)["input_ids"][:R]
        la = aligned(input_ids=torch.tensor([a_prompt + y])).logits[0].double()
        lb = base(input_ids=torch.tensor([b_prompt + y])).logits[0].double()
        mi = di = 0.0
        for t in range(len(y)):
            pa = la[len(a_prompt) - 1 + t].softmax(-1)
            pb = lb[len(b_prompt) - 1 + t].softmax(-1)
            mi = mi + pa / len(y)
            di = di + ((pa - pb) if mode == "p_diff" else pa * (pb.log() - pa.log())) / len(y)
        m, d = m + mi / len(pairs), d + di / len(pairs)
    return m, d


@pytest.mark.parametrize("mode", ["p_diff", "pref_logratio"])
def test_batched_scoring_equals_per_sample_loop(mode):
    aligned, tok = tiny(seed=0)
    base, _ = tiny(seed=1)
    with torch.no_grad():
        m, d = naive_scores(aligned, base, tok, PAIRS, R=12, mode=mode)
    scores = score_refusals(aligned, base, tok, PAIRS, max_resp_len=12, mode=mode, batch_size=2, progress=False)
    torch.testing.assert_close(scores.m.double(), m, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(scores.d.double(), d, atol=1e-6, rtol=1e-4)


def test_different_vocabularies_are_refused():
    aligned, tok = tiny(seed=0)
    base, base_tok = tiny(seed=1)
    base_tok = copy.deepcopy(base_tok)
    base_tok.add_tokens(["<an extra token>"])
    base.resize_token_embeddings(len(base_tok))
    with pytest.raises(ConfigError, match="different vocabularies"):
        check_same_vocabulary(tok, base_tok, aligned, base, "aligned", "base")
    check_same_vocabulary(tok, tok, aligned, aligned, "aligned", "aligned")


def test_concurrent_builders_build_once_and_a_killed_builder_blocks_no_one(tmp_path):
    """Several DDP ranks or sweep jobs asking for the same artifact: one builds, the others wait for its file. A builder
    killed while it holds the lock (SIGKILL: no cleanup at all) does not keep the next one waiting."""
    import subprocess
    import sys
    import threading
    import time

    from pact_lightning.utils.once import build_once

    target = tmp_path / "artifact.bin"
    calls = []

    def build():
        calls.append(threading.get_ident())
        time.sleep(0.5)
        target.write_text("done")
        return target

    results = []
    threads = [threading.Thread(target=lambda: results.append(build_once(target, target.is_file, build)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(map(str, results)) == sorted([str(target), "None", "None"])

    target.unlink()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               f"FileLock({str(target) + '.lock'!r}).acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    start = time.perf_counter()
    assert build_once(target, target.is_file, build) == target and len(calls) == 2
    assert time.perf_counter() - start < 5  # the dead holder's lock went with it


def test_the_app_prints_its_table_once_and_the_chart_explains_its_colours(tmp_path, monkeypatch):
    import re
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "pact_lightning.safety_tokens", "model=tiny",
                           "model.tiny.tokenizer.cache_dir=${oc.env:PACT_CACHE}", "safety.K=8",
                           "method.num_safety_tokens=6", f"paths.cache_dir={tmp_path / 'cache'}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Safety tokens written to" in out  # built by this run, not reused: the case that printed it twice
    assert len(re.findall(r"rank\s+id\s+token", out)) == 1, out

    shown = {}
    monkeypatch.setattr(selection, "save_figure", lambda fig, path: shown.setdefault("fig", fig))
    artifact = next((tmp_path / "cache" / "safety_tokens").glob("*.safetensors"))
    tokens, _ = selection.report(artifact, 6)
    ax = shown["fig"].axes[0]
    assert artifact.name not in ax.get_title() and "tiny test model" in ax.get_title() and "k=6" in ax.get_title()
    colours = {"tab:blue" if w > 0 else "tab:gray" for w in tokens.weights.tolist()}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [selection.WEIGHT_COLOURS[c] for c in selection.WEIGHT_COLOURS if c in colours] and legend
