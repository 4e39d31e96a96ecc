"""The bad-input catalogue. Every case goes through the real training entry point (config composition included) and
must fail with an error that names the file / row / field or config key and says what to do — before any training
step, and without changing a byte of what an earlier run left in the run directory or the cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.errors import ConfigCompositionException, MissingConfigException

from conftest import ROOT
from pact_lightning.errors import ArtifactError, ConfigError, DataError
from runs import TINY, app_config, train_inprocess

K_MAX = 200  # candidates in the earlier run's artifact


@dataclass
class Workspace:
    """What an earlier run left (run directory, cache with a safety-token artifact and a reference cache) and a folder
    for the bad input files."""

    run_dir: Path
    cache: Path
    files: Path

    @property
    def artifact(self) -> Path:
        return self.cache / "safety_tokens" / "tiny-earlier.safetensors"

    def snapshot(self) -> dict[str, str]:
        """sha256 of every file in the run directory and the cache (the link to the converted models not followed)."""
        digests = {}
        for root in (self.run_dir, self.cache):
            for folder, _, names in os.walk(root):
                for name in names:
                    path = Path(folder, name)
                    if not path.is_symlink():
                        digests[str(path.relative_to(root.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digests


@pytest.fixture
def workspace(tmp_path, smollm2_tokenizer) -> Workspace:
    from safetensors.torch import save_file

    from pact_lightning.models.reference_cache import save_cache
    from pact_lightning.safety.tokens import save_artifact
    from pact_lightning.utils.io import write_json

    ws = Workspace(tmp_path / "run", tmp_path / "cache", tmp_path / "files")
    for folder in (ws.files, ws.cache, ws.run_dir / "final", ws.run_dir / "checkpoints"):
        folder.mkdir(parents=True)
    (ws.cache / "converted").symlink_to(Path(os.environ["PACT_CACHE"]) / "converted")  # the tiny model's tokenizer
    g = torch.Generator().manual_seed(0)
    ids = torch.randperm(len(smollm2_tokenizer), generator=g)[:K_MAX]
    save_artifact(ws.artifact, ids, torch.rand(K_MAX, generator=g), torch.randn(K_MAX, generator=g),
                  [smollm2_tokenizer.decode([i]) for i in ids.tolist()], smollm2_tokenizer, "tiny", "tiny-base", {})
    save_cache(ws.cache / "reference_cache" / "tiny-earlier.safetensors",
               {"offsets": torch.arange(3), "subset_full": torch.randn(2, 4)}, {"earlier": "run"})
    write_json(ws.run_dir / "results.json", {"method": "pact", "train": {"train/loss": 1.0}})
    write_json(ws.run_dir / "poison_ledger.json", {"num_benign": 3, "num_poison": 1, "examples": []})
    save_file({"lora_A": torch.ones(2)}, str(ws.run_dir / "final" / "adapter_model.safetensors"))
    torch.save({"global_step": 3, "state_dict": {}}, ws.run_dir / "checkpoints" / "last.ckpt")
    return ws


# ------------------------------------------------------------------------------------------------ bad input files

def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def foreign_artifact(ws: Workspace) -> None:
    from pact_lightning.safety.tokens import save_artifact

    class OtherTokenizer:  # another model's vocabulary
        def get_vocab(self):
            return {"<s>": 0, "I": 1, "sorry": 2}

        def __len__(self):
            return 3

    save_artifact(ws.files / "foreign.safetensors", torch.tensor([1, 2]), torch.tensor([0.5, 0.2]),
                  torch.tensor([0.1, 0.3]), ["I", "sorry"], OtherTokenizer(), "other-aligned", "other-base", {})


def truncated_copy(name: str, source: Callable[[Workspace], Path]) -> Callable[[Workspace], None]:
    def prepare(ws: Workspace) -> None:
        data = source(ws).read_bytes()
        write(ws.files / name, data[: len(data) // 2])
    return prepare


def corrupted_copy(name: str, source: Callable[[Workspace], Path]) -> Callable[[Workspace], None]:
    """A copy with one byte of the first archived record flipped: the zip structure stays intact."""
    def prepare(ws: Workspace) -> None:
        import struct
        import zipfile

        data = bytearray(source(ws).read_bytes())
        with zipfile.ZipFile(source(ws)) as archive:
            offset = archive.infolist()[0].header_offset
        name_len, extra_len = struct.unpack("<HH", data[offset + 26:offset + 30])
        data[offset + 30 + name_len + extra_len] ^= 0xFF
        write(ws.files / name, bytes(data))
    return prepare


def tokenizer_without_chat_template(ws: Workspace) -> None:
    from pact_lightning.models.loading import load_tokenizer
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny.yaml").tiny.tokenizer
    cfg.cache_dir = str(ws.cache)
    tok = load_tokenizer(cfg)
    tok.chat_template = None
    tok.save_pretrained(ws.files / "plain_tokenizer")


GOOD_ROW = '{"prompt": "Review %d: a fine film. Sentiment?", "response": "positive"}'


def data_file(name: str, bad_row: str | bytes, rows: int = 24) -> Callable[[Workspace], None]:
    """A JSONL/CSV file of ``rows`` good rows whose row 2 is ``bad_row`` (a CSV file gets a header first)."""
    def prepare(ws: Workspace) -> None:
        if name.endswith(".csv"):
            lines = ["prompt,response"] + [f"Review {i}: a fine film. Sentiment?,positive" for i in range(rows)]
        else:
            lines = [GOOD_ROW % i for i in range(rows)]
        lines[1 if name.endswith(".jsonl") else 2] = bad_row
        write(ws.files / name, b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return prepare


def benign_from(name: str) -> list[str]:
    """data.benign = a LocalFile, and no poison: all 24 rows are drawn, so a bad row is always read and encoded."""
    return ["data.benign._target_=pact_lightning.data.sources.LocalFile", "~data.benign.split",
            f"+data.benign.path={{files}}/{name}", "data.poison_ratio=0"]


@dataclass
class Case:
    overrides: list[str]  # {files} and {artifact} are filled in
    error: type[Exception]
    says: tuple[str, ...]  # what the message must contain: the key / file / row / field, and what to do
    prepare: Callable[[Workspace], None] | None = None


PACT = ["method=pact", "method.safety_tokens={artifact}"]

CASES = {
    "JSONL row that is not JSON": Case(
        benign_from("broken.jsonl"), DataError, ("broken.jsonl line 2", "not valid JSON", "one JSON object"),
        data_file("broken.jsonl", '{"prompt": "Review 1: fine", "response": ')),
    "row missing the prompt field": Case(
        benign_from("no_prompt.jsonl"), DataError, ("no_prompt.jsonl line 2", "no field 'prompt'", "set prompt_field"),
        data_file("no_prompt.jsonl", '{"question": "Review 1: fine", "response": "positive"}')),
    "row missing the response field": Case(
        benign_from("no_response.jsonl"), DataError,
        ("no_response.jsonl line 2", "no field 'response'", "set response_field"),
        data_file("no_response.jsonl", '{"prompt": "Review 1: fine", "answer": "positive"}')),
    "empty response": Case(
        benign_from("empty.jsonl"), DataError, ("empty.jsonl line 2", "'response'", "is empty", "remove the row"),
        data_file("empty.jsonl", '{"prompt": "Review 1: fine", "response": "  "}')),
    "prompt longer than max_length": Case(
        benign_from("long.jsonl"), DataError,
        ("long.jsonl row 2", "field 'prompt'", "data.max_length=96", "raise data.max_length or shorten/drop this row"),
        data_file("long.jsonl", '{"prompt": "%s", "response": "positive"}' % ("very " * 120))),
    "non-UTF-8 file": Case(
        benign_from("latin1.jsonl"), DataError, ("latin1.jsonl line 2", "0xe9 is not valid UTF-8", "re-encode"),
        data_file("latin1.jsonl", '{"prompt": "Caf\u00e9 review", "response": "positive"}'.encode("latin-1"))),
    "CSV row with a missing cell": Case(
        benign_from("short_row.csv"), DataError, ("short_row.csv line 3", "1 cells but the header has 2", "quote"),
        data_file("short_row.csv", "Review 1 has no label")),
    "data file that does not exist": Case(
        benign_from("missing.jsonl"), DataError, ("missing.jsonl", "no such file", "fix the path")),
    "n larger than the available rows": Case(
        benign_from("five.jsonl") + ["data.num_samples=24"], ConfigError,
        ("data.num_samples=24", "needs 24 rows from data.benign", "five.jsonl", "has 5", "lower data.num_samples"),
        data_file("five.jsonl", GOOD_ROW % 1, rows=5)),
    "poison_ratio < 0": Case(["data.poison_ratio=-0.1"], ConfigError, ("data.poison_ratio=-0.1", "must be in [0, 1]")),
    "poison_ratio > 1": Case(["data.poison_ratio=1.5"], ConfigError, ("data.poison_ratio=1.5", "must be in [0, 1]")),
    "k > the artifact's candidates": Case(
        PACT + ["method.num_safety_tokens=201"], ConfigError,
        ("method.num_safety_tokens=201", "has 200 candidates", "pick k in [1, 200]", "larger k_max")),
    "k > the vocabulary": Case(
        ["method=pact", "method.num_safety_tokens=60000", "safety.k_max=60000", "safety.K=4"], ConfigError,
        ("safety.k_max=60000", "the vocabulary size")),
    "artifact of another tokenizer": Case(
        ["method=pact", "method.safety_tokens={files}/foreign.safetensors"], ArtifactError,
        ("foreign.safetensors", "another tokenizer", "tokenizer_fingerprint", "rebuild the artifact for this model"),
        foreign_artifact),
    "truncated artifact": Case(
        ["method=pact", "method.safety_tokens={files}/truncated.safetensors"], ArtifactError,
        ("truncated.safetensors", "truncated or corrupt", "rebuild"),
        truncated_copy("truncated.safetensors", lambda ws: ws.artifact)),
    "artifact path that does not exist": Case(
        ["method=pact", "method.safety_tokens={files}/missing.safetensors"], ArtifactError,
        ("missing.safetensors", "does not exist", "python -m pact_lightning.safety_tokens")),
    "method.lam < 0": Case(PACT + ["method.lam=-0.5"], ConfigError, ("method.lam=-0.5", "must be >= 0")),
    "model without a chat template": Case(
        ["model.tiny.tokenizer.gguf=null", "model.tiny.tokenizer.pretrained={files}/plain_tokenizer"], ConfigError,
        ("plain_tokenizer", "has no chat template", "set model.chat_template"), tokenizer_without_chat_template),
    "unknown method=": Case(["method=pcat"], MissingConfigException, ("method/pcat", "pact", "sft")),
    "checkpoint path that does not exist": Case(
        ["ckpt_path={files}/missing.ckpt"], ConfigError, ("ckpt_path=", "missing.ckpt", "does not exist")),
    "truncated checkpoint": Case(
        ["ckpt_path={files}/truncated.ckpt"], ArtifactError, ("truncated.ckpt", "truncated", "resume from another"),
        truncated_copy("truncated.ckpt", lambda ws: ws.run_dir / "checkpoints" / "last.ckpt")),
    "corrupt checkpoint (archive intact, a record damaged)": Case(
        ["ckpt_path={files}/corrupt.ckpt"], ArtifactError, ("corrupt.ckpt", "truncated or corrupt", "resume from another"),
        corrupted_copy("corrupt.ckpt", lambda ws: ws.run_dir / "checkpoints" / "last.ckpt")),
    "typo in a key": Case(["method.lamm=0.5"], ConfigCompositionException, ("method.lamm",)),
    "data.max_length too small": Case(["data.max_length=1"], ConfigError, ("data.max_length=1", "too small")),
    "unknown reference.mode": Case(PACT + ["reference.mode=fast"], ConfigError,
                                   ("reference.mode='fast'", "use auto, frozen_copy, adapter_disabled or cached")),
    "unknown model.dtype": Case(["model.dtype=float8"], ConfigError, ("model.dtype='float8'", "use one of")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_before_training_with_a_clear_error(name, workspace, monkeypatch):
    from pact_lightning.models.module import PactModule

    case = CASES[name]
    if case.prepare is not None:
        case.prepare(workspace)
    before = workspace.snapshot()

    def no_training(*args, **kwargs):
        raise AssertionError(f"{name}: a training step ran")

    monkeypatch.setattr(PactModule, "training_step", no_training)
    overrides = [o.format(files=workspace.files, artifact=workspace.artifact) for o in case.overrides]
    # the earlier run's artifact feeds SFT's safety diagnostic (instead of a selection run per case)
    tokens = [] if any(o.startswith("method=") for o in overrides) else [f"method.safety_tokens={workspace.artifact}"]
    with pytest.raises(case.error) as raised:
        train_inprocess(workspace.run_dir, ["method=sft", *tokens, "trainer.max_steps=2",
                                            f"paths.cache_dir={workspace.cache}", *overrides])
    message = str(raised.value)
    assert all(fragment in message for fragment in case.says), message
    after = workspace.snapshot()
    assert {path: after.get(path) for path in before} == before  # nothing an earlier run wrote was touched
    assert not [path for path in after if path.endswith((".tmp", ".lock"))]


def test_a_sweep_override_with_a_typo_names_the_key_before_any_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pact_lightning.train", "-m", *TINY, "method=sft",
                           "method.lamm=0.1,0.5", f"hydra.sweep.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Could not override 'method.lamm'" in proc.stderr and "Key 'lamm' is not in struct" in proc.stderr
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.ckpt"))


def test_a_corrupt_reference_cache_is_refused_before_training(workspace, monkeypatch):
    """The reference cache a run needs is truncated: refused with the file and what to do, before any training step,
    and nothing in the run or cache directories (the corrupt file included) is touched."""
    from pact_lightning.models.module import PactModule

    cached = ["method=pact", f"method.safety_tokens={workspace.artifact}", "reference.mode=cached",
              "trainer.max_steps=2", f"paths.cache_dir={workspace.cache}"]
    train_inprocess(workspace.files / "first", cached)
    (cache_file,) = [p for p in (workspace.cache / "reference_cache").glob("*.safetensors") if "earlier" not in p.name]
    write(cache_file, cache_file.read_bytes()[: cache_file.stat().st_size // 2])
    before = workspace.snapshot()
    monkeypatch.setattr(PactModule, "training_step", lambda *a, **k: pytest.fail("a training step ran"))
    with pytest.raises(ArtifactError) as raised:
        train_inprocess(workspace.run_dir, cached)
    message = str(raised.value)
    assert all(s in message for s in (str(cache_file), "truncated or corrupt", "delete it", "rebuild")), message
    assert {path: workspace.snapshot().get(path) for path in before} == before


def test_evaluating_a_checkpoint_that_does_not_exist_is_refused_before_loading(tmp_path):
    from pact_lightning.evaluate import evaluate

    cfg = app_config("evaluate", ["model=tiny", f"checkpoint={tmp_path}/no_such_run/final"], tmp_path / "eval")
    with pytest.raises(ArtifactError, match=r"no_such_run/final'? does not exist .*the run's `final/` folder"):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "results.json").exists()
