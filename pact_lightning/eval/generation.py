"""Batched generation for evaluation: the user prompt alone in the model's chat template, as in the authors' eval."""

from __future__ import annotations

import torch

from pact_lightning.utils import progress as progress_lines


def chat_prompt(tokenizer, prompt: str) -> str:
    """``prompt`` as the only (user) turn of the chat template, followed by the assistant header."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def generate(model, tokenizer, prompts: list[str], *, batch_size: int = 16, max_new_tokens: int = 64,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             progress: bool = True, desc: str = "generating") -> list[str]:
    """One response per prompt (stripped, special tokens removed), in the order of ``prompts``."""
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    return complete(model, tokenizer, texts, batch_size=batch_size, max_new_tokens=max_new_tokens, do_sample=do_sample,
                    temperature=temperature, top_p=top_p, seed=seed, progress=progress, desc=desc)


def complete(model, tokenizer, texts: list[str], *, batch_size: int = 16, max_new_tokens: int = 64,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             progress: bool = True, desc: str = "generating") -> list[str]:
    """Continuations of already-templated ``texts`` (the guard judge renders its own chat).

    Texts are sorted by length (characters) so each left-padded batch carries little padding; the longest batch runs
    first, so an out-of-memory error shows up at once rather than at the end.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    # Explicit neutral values: transformers fills every field a call leaves unset from the model's own
    # generation_config, and Qwen2.5's carries repetition_penalty=1.05 — greedy evaluation must not inherit it.
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "use_cache": True,
              "pad_token_id": tokenizer.pad_token_id, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    if do_sample:
        # top_k=0 switches off transformers' default top-k of 50: the authors' vLLM sampling truncates by top-p only
        kwargs |= {"temperature": temperature, "top_p": top_p, "top_k": 0}
    device = next(model.parameters()).device
    out: list[str] = [""] * len(texts)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                progress_lines.bar(len(texts), desc, unit="prompt", disable=not progress) as bar:
            torch.manual_seed(seed)
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                # no special tokens: the rendered template already carries BOS where the model wants it.
                # padding_side per call: the caller's tokenizer (right-padded for training) is left as it was.
                batch = tokenizer([texts[i] for i in idx], add_special_tokens=False, padding=True,
                                  padding_side="left", return_tensors="pt").to(device)
                ids = model.generate(**batch, **kwargs)
                new = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, text in zip(idx, new):
                    out[i] = text.strip()
                bar.update(len(idx))
    finally:
        model.train(was_training)
    return out
