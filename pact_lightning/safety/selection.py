"""Stage A of PACT: find the safety tokens of an aligned model (docs/method.md §2, the authors' procedure).

Both models score the same refusal responses by teacher forcing (no generation):

* the aligned model sees its chat template with the generation prompt, the base model the plain prompt
  ``"User: {prompt}\\n\\nAssistant: "``; both then see the first R ≤ ``max_resp_len`` tokens y_1..y_R of the refusal;
* at every response step t, p_ref,t and p_base,t are the softmax of the logits at temperature τ;
* per sample, m_i = mean_t p_ref,t and d_i = mean_t (p_ref,t − p_base,t) (mode ``p_diff``) or
  mean_t p_ref,t ⊙ (log p_base,t − log p_ref,t) (mode ``pref_logratio``); m and d are the means over samples;
* the candidates are the ``k_max`` tokens with the highest m. A run takes the first k and weighs them by the z-score of
  d within that set, L2-normalised (``safety.tokens.weights_from_scores``).

m and d are |V|-vectors summed batch by batch; nothing per sample outlives its batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from pact_lightning.errors import ConfigError, DataError
from pact_lightning.models.loading import base_model_config, load_model, load_tokenizer, weights_digest, weights_key
from pact_lightning.models.scoring import model_logits, response_logits
from pact_lightning.safety.tokens import SafetyTokens, load_safety_tokens, read_metadata, save_artifact
from pact_lightning.utils.fingerprint import digest, tokenizer_fingerprint
from pact_lightning.utils.strategies import local_device
from pact_lightning.utils.io import save_figure, subplots, write_text
from pact_lightning.utils.once import build_once
from pact_lightning.utils.progress import iterate
from pact_lightning.utils.timing import stage

log = logging.getLogger(__name__)

MODES = ("p_diff", "pref_logratio")
PLAIN_PROMPT = "User: {prompt}\n\nAssistant: "


@dataclass
class Scores:
    m: Tensor  # [V] mean aligned-model probability
    d: Tensor  # [V] mean (aligned − base) probability, or the pref_logratio score
    num_samples: int


@dataclass
class Encoded:
    aligned_prompt: list[int]
    base_prompt: list[int]
    response: list[int]


def encode(tokenizer, pairs: Sequence[tuple[str, str]], max_resp_len: int) -> list[Encoded]:
    """Token ids of each pair: chat-template prompt (aligned), plain prompt (base), and the first R response tokens.

    The response is tokenised once and shared, so both models score exactly the same tokens.
    """
    out = []
    for i, (prompt, response) in enumerate(pairs):
        chat = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"][:max_resp_len]
        if not response_ids:
            raise DataError(f"safety.refusals row {i}: field 'response' is empty; every refusal sample needs a response")
        out.append(Encoded(aligned_prompt=tokenizer(chat, add_special_tokens=False)["input_ids"],
                           # as the authors: no special tokens, so no BOS the base model's tokenizer would add
                           base_prompt=tokenizer(PLAIN_PROMPT.format(prompt=prompt), add_special_tokens=False)["input_ids"],
                           response=response_ids))
    return out


def response_log_probs(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                       temperature: float) -> Tensor:
    """``[N, V]`` float32 log-softmax(logits / τ) at the N positions that predict a response token (sample-major)."""
    logits = response_logits(model_logits(model), prompts, responses, pad_id, next(model.parameters()).device)
    return torch.log_softmax(logits.float() / temperature, dim=-1)


@torch.no_grad()
def score_refusals(aligned, base, tokenizer, pairs: Sequence[tuple[str, str]], max_resp_len: int = 64,
                   mode: str = "p_diff", temperature: float = 1.0, batch_size: int = 8,
                   progress: bool = True) -> Scores:
    """m and d of docs/method.md §2 over ``pairs`` = (harmful prompt, refusal) with the aligned and the base model."""
    if mode not in MODES:
        raise ConfigError(f"safety.mode={mode!r} is unknown; use one of {MODES}")
    encoded = encode(tokenizer, pairs, max_resp_len)
    if not encoded:
        raise DataError("safety.refusals gave no samples; safety-token selection needs refusal responses")
    aligned.eval(), base.eval()
    pad = tokenizer.pad_token_id
    m = d = None
    for start in iterate(range(0, len(encoded), batch_size), "safety tokens: scoring refusals", unit="batch",
                         disable=not progress):
        batch = encoded[start:start + batch_size]
        responses = [e.response for e in batch]
        lp_ref = response_log_probs(aligned, [e.aligned_prompt for e in batch], responses, pad, temperature)
        lp_base = response_log_probs(base, [e.base_prompt for e in batch], responses, pad, temperature)
        # weight 1/R_i turns the sum over a sample's steps into its mean; the sum over samples is divided by K below
        w = torch.cat([torch.full((len(r),), 1.0 / len(r)) for r in responses]).to(lp_ref.device)
        p_ref = lp_ref.exp()
        diff = p_ref - lp_base.exp() if mode == "p_diff" else p_ref * (lp_base - lp_ref)
        m = w @ p_ref if m is None else m + w @ p_ref
        d = w @ diff if d is None else d + w @ diff
    n = len(encoded)
    return Scores(m=(m / n).cpu(), d=(d / n).cpu(), num_samples=n)


def top_candidates(scores: Scores, k_max: int, vocab_size: int) -> Tensor:
    """Ids of the ``k_max`` highest-m tokens (ids past the tokenizer's vocabulary — padding rows — never qualify)."""
    m = scores.m[:vocab_size]
    if not 1 <= k_max <= m.numel():
        raise ConfigError(f"safety.k_max={k_max} must be in [1, {m.numel()}] (the vocabulary size)")
    return torch.topk(m, k_max).indices


def check_same_vocabulary(aligned_tok, base_tok, aligned_model, base_model, aligned_name: str, base_name: str) -> None:
    """The authors assert that both models share the vocabulary: m and d compare them column by column."""
    fa, fb = tokenizer_fingerprint(aligned_tok), tokenizer_fingerprint(base_tok)
    va = aligned_model.get_output_embeddings().weight.shape[0]
    vb = base_model.get_output_embeddings().weight.shape[0]
    if fa != fb or va != vb:
        raise ConfigError(
            f"the aligned model {aligned_name!r} and the base model {base_name!r} have different vocabularies "
            f"(tokenizers: {len(aligned_tok)} tokens, fingerprint {fa} vs {len(base_tok)} tokens, fingerprint {fb}; "
            f"output layers: {va} vs {vb} rows). Safety-token selection compares their probabilities token by token: "
            "set model.base to the pre-trained model of the same family (same tokenizer)")


def refusal_pairs(source_cfg: DictConfig, K: int) -> list[tuple[str, str]]:
    """The first K (prompt, response) pairs of the ``safety.refusals`` source (all of them, with a warning, if fewer)."""
    rows = instantiate(source_cfg).load()
    if len(rows) < K:
        log.warning("safety.K=%d but safety.refusals has only %d rows; using all of them", K, len(rows))
    return [(r.prompt, r.response) for r in rows[:K]]


def format_table(tokens: SafetyTokens, bias=None) -> str:
    """Rank, token id, decoded token, m, d, weight v and PACT's w = max(v, 0) of the set S a run with k = |S| would use;
    with ``bias`` (a run's :class:`~pact_lightning.record.TargetBias`) also the logit shift its target asks for at
    θ_ref (−inf where w = 0)."""
    shift = {t["id"]: t.get("shift") for t in bias.tokens or ()} if bias is not None else None
    lines = [f"{'rank':>4}  {'id':>6}  {'token':<16}  {'m':>9}  {'d':>10}  {'weight':>8}  {'w':>7}"
             + (f"  {'shift':>8}" if shift is not None else "")]
    for rank, (i, tok, m, d, v) in enumerate(zip(tokens.ids.tolist(), tokens.tokens, tokens.m.tolist(),
                                                  tokens.d.tolist(), tokens.weights.tolist()), start=1):
        line = f"{rank:>4}  {i:>6}  {repr(tok):<16}  {m:>9.5f}  {d:>+10.5f}  {v:>+8.4f}  {max(v, 0.0):>7.4f}"
        if shift is not None:
            s = shift.get(i)
            line += f"  {s:>+8.3f}" if s is not None else f"  {'-inf':>8}"
        lines.append(line)
    return "\n".join(lines)


WEIGHT_COLOURS = {"tab:blue": "weight > 0: PACT pulls the policy towards it (w = v)",
                  "tab:gray": "weight <= 0: in S, but PACT's weighted target gives it w = max(v, 0) = 0"}


def plot_weights(tokens: SafetyTokens, path: Path, title: str) -> Path:
    """Bar chart of the weights of S, in rank order (by m), positive bars are the tokens PACT pulls towards; a legend
    says what each colour means."""
    from matplotlib.patches import Patch

    weights = tokens.weights.tolist()
    fig, ax = subplots(figsize=(max(6.0, 0.28 * len(weights)), 4.0))
    colours = ["tab:blue" if w > 0 else "tab:gray" for w in weights]
    ax.bar(range(len(weights)), weights, color=colours)
    ax.legend(handles=[Patch(color=c, label=label) for c, label in WEIGHT_COLOURS.items() if c in colours],
              fontsize=7, loc="upper right")
    ax.set_xticks(range(len(weights)), [repr(t)[1:-1] for t in tokens.tokens], rotation=90, fontsize=7)
    ax.set_xlabel("safety token, by rank (m: how much more the aligned model than its base puts on it in refusals)")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("weight v (z-score of d in S, L2-normalised)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def report(path: Path, k: int, tokenizer=None) -> tuple[SafetyTokens, Path]:
    """Write ``<artifact>.k<k>.txt`` (the table) and ``.k<k>.png`` (the bar chart) next to the artifact; return S and
    the chart's path."""
    tokens = load_safety_tokens(path, k, tokenizer, cached=True)
    stem = path.with_suffix("")
    write_text(stem.with_name(f"{stem.name}.k{k}.txt"), format_table(tokens) + "\n")
    png = plot_weights(tokens, stem.with_name(f"{stem.name}.k{k}.png"), chart_title(read_metadata(path), k))
    return tokens, png


def short_model(source: str) -> str:
    """A model's weight source as a reader knows it: a hub id, a directory's name, the tiny test model's kind."""
    source = source.split("+")[0]
    if source.startswith("tiny:"):
        return "tiny test model"
    return Path(source).name if source.startswith(("/", ".", "~")) else source


def chart_title(meta: dict[str, str], k: int) -> str:
    """What the chart shows, in words: S of which aligned model against which base."""
    return (f"Safety tokens S (k={k}) and their weights v: {short_model(meta.get('aligned_model', '?'))} "
            f"against its base {short_model(meta.get('base_model', '?'))}")


def selection_settings(safety: DictConfig, k: int) -> dict[str, Any]:
    """The settings that shape the artifact, checked; ``k`` is the size of S the run will take from it."""
    if safety.mode not in MODES:
        raise ConfigError(f"safety.mode={safety.mode!r} is unknown; use one of {MODES}")
    if int(safety.k_max) < k:
        raise ConfigError(f"safety.k_max={safety.k_max} is smaller than method.num_safety_tokens={k}; raise "
                          "safety.k_max")
    return {"K": int(safety.K), "k_max": int(safety.k_max), "max_resp_len": int(safety.max_resp_len),
            "mode": str(safety.mode), "temperature": float(safety.temperature)}


def artifact_path(safety: DictConfig, model_cfg: DictConfig, cache_dir: Path,
                  k: int) -> tuple[Path, dict[str, Any], list[tuple[str, str]]]:
    """Where the artifact for this aligned/base pair and these settings lives, its identity and the refusal data."""
    settings = selection_settings(safety, k)
    base_cfg = base_model_config(model_cfg)
    pairs = refusal_pairs(safety.refusals, settings["K"])
    identity = {"aligned": weights_key(model_cfg), "base": weights_key(base_cfg),
                "tokenizer": tokenizer_fingerprint(load_tokenizer(model_cfg)), "refusals": digest(list(pairs)),
                "dtype": str(model_cfg.get("dtype")), **settings}
    return Path(cache_dir) / "safety_tokens" / f"{model_cfg.name}-{digest(identity)}.safetensors", identity, pairs


def build_artifact(safety: DictConfig, model_cfg: DictConfig, path: Path, identity: dict[str, Any],
                   pairs: list[tuple[str, str]]) -> Path:
    """Load the aligned and base models, score the refusals and write the artifact (atomically)."""
    s = safety
    base_cfg = base_model_config(model_cfg)
    aligned, tokenizer = load_model(model_cfg, lora=False)
    base, base_tok = load_model(base_cfg, lora=False, require_chat_template=False)
    check_same_vocabulary(tokenizer, base_tok, aligned, base, identity["aligned"], identity["base"])
    # this process's own GPU (cuda:<local rank>), not the bare "cuda" of every rank; freed again below
    device = torch.device(s.device) if s.device != "auto" else local_device()
    aligned, base = aligned.to(device), base.to(device)
    log.info("Selecting safety tokens: aligned=%s base=%s, %d refusals, R<=%d, mode=%s; safety tokens on %s",
             identity["aligned"], identity["base"], len(pairs), s.max_resp_len, s.mode, device)
    scores = score_refusals(aligned, base, tokenizer, pairs, int(s.max_resp_len), str(s.mode), float(s.temperature),
                            int(s.batch_size))
    ids = top_candidates(scores, int(s.k_max), len(tokenizer))
    # who plays "base": the pre-alignment checkpoint when this run aligned the model itself, else model.base
    base_role = ("pre-alignment model (alignment stage)" if model_cfg.get("aligned_by") else "model.base")
    settings = {**identity, "num_samples": scores.num_samples, "base_role": base_role,
                "refusals_source": OmegaConf.to_container(s.refusals, resolve=True)}
    aligned_digest = weights_digest(aligned)
    del aligned, base  # two full models: gone before the run loads its own
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return save_artifact(path, ids, scores.m[ids], scores.d[ids], [tokenizer.decode([i]) for i in ids.tolist()],
                         tokenizer, aligned_model=identity["aligned"], base_model=identity["base"], settings=settings,
                         aligned_weights=aligned_digest)


def ensure_artifact(safety: DictConfig, model_cfg: DictConfig, cache_dir: str | Path, k: int,
                    log_table: bool = True) -> Path:
    """The artifact for ``model_cfg`` and its base, built on first use and reused afterwards (keyed by its identity);
    ``k`` is the size of S the caller takes (the logged table shows it, unless ``log_table`` is false: the caller
    prints it)."""
    path, identity, pairs = artifact_path(safety, model_cfg, Path(cache_dir), k)
    with stage("safety_tokens"):
        built = build_once(path, path.is_file, lambda: build_artifact(safety, model_cfg, path, identity, pairs))
        if built is None:
            log.info("Safety tokens: reusing %s", path)
        else:
            tokens, png = report(path, k)
            if log_table:
                log.info("Safety tokens written to %s (k=%d shown):\n%s", path, k, format_table(tokens))
            else:
                log.info("Safety tokens written to %s (chart: %s)", path, png)
    return path
