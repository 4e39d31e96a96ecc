"""precision: auto — bf16-mixed on a CUDA device with bf16, float32 on every CPU; resolved before anything reads it,
logged, and part of the aligned model's cache key (the CUDA queries are stand-ins here: there is no GPU)."""

from __future__ import annotations

import logging

import torch

from conftest import compose
from pact_lightning import alignment
from pact_lightning.utils import precision


def fake_cuda(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Stand-in GPU")


def test_auto_is_float32_on_a_cpu_and_bf16_mixed_on_a_gpu_with_bf16(monkeypatch):
    assert precision.resolve("auto", "cpu")[0] == "32-true"
    assert precision.resolve("auto", "auto")[0] == ("32-true" if not torch.cuda.is_available() else
                                                    precision.resolve("auto", "gpu")[0])
    assert precision.resolve("bf16-mixed", "cpu") == ("bf16-mixed", "as configured")  # an explicit choice stays
    fake_cuda(monkeypatch, bf16=True)
    assert precision.resolve("auto", "gpu") == ("bf16-mixed", "CUDA device Stand-in GPU supports bf16")
    assert precision.resolve("auto", "cpu")[0] == "32-true"  # trainer=cpu on a GPU machine: float32
    fake_cuda(monkeypatch, bf16=False)
    assert precision.resolve("auto", "gpu") == ("32-true", "CUDA device Stand-in GPU has no bf16 support")


def test_a_run_resolves_auto_before_anything_reads_it_and_logs_the_choice(tmp_path, caplog):
    cfg = compose("train", [], output_dir=tmp_path)  # the embedded default: trainer and alignment stage on auto
    assert (cfg.trainer.precision, cfg.align.trainer.precision) == ("auto", "auto")
    with caplog.at_level(logging.INFO, logger="pact_lightning.utils.precision"):
        precision.resolve_config(cfg)
    assert (cfg.trainer.precision, cfg.align.trainer.precision) == ("32-true", "32-true")
    assert "trainer.precision=auto → 32-true (no CUDA device" in caplog.text
    assert "align.trainer.precision=auto → 32-true" in caplog.text


def test_the_aligned_models_cache_key_holds_what_auto_resolved_to(tmp_path, monkeypatch):
    def key(value: str) -> str:
        cfg = compose("align", [f"align.trainer.precision={value}"], output_dir=tmp_path)
        return alignment.aligned_dir(cfg.align, cfg.model, tmp_path).name

    cpu = key("auto")
    assert cpu == key("32-true") != key("bf16-mixed")
    fake_cuda(monkeypatch, bf16=True)
    assert key("auto") == key("bf16-mixed") != cpu  # a GPU build in bf16 is another aligned model


def test_a_checkpoints_settings_match_whether_or_not_auto_was_resolved_yet(tmp_path):
    """The run-directory guard compares settings before the task resolves `auto`; the checkpoint holds the resolved
    value. Both must read the same, or a SIGTERM'd run could never be resumed in place."""
    from pact_lightning.build import defining_config

    cfg = compose("train", ["model=tiny"], output_dir=tmp_path)
    unresolved = defining_config(cfg)
    precision.resolve_config(cfg)
    assert cfg.trainer.precision == "32-true"
    assert unresolved == defining_config(cfg)
    assert unresolved["trainer.precision"] == "32-true" and unresolved["align"]["trainer"]["precision"] == "32-true"
