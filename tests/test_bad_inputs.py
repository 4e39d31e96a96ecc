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

    cfg = OmegaConf.load(ROOT / "pact_lightning" / "conf" / "model" / "tiny.yaml").tiny.tokenizer
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


def raw_file(name: str, data: bytes) -> Callable[[Workspace], None]:
    def prepare(ws: Workspace) -> None:
        write(ws.files / name, data)
    return prepare


GOOD_JSONL = "".join(GOOD_ROW % i + "\n" for i in range(24))


def earlier_run(*overrides: str) -> Callable[[Workspace], None]:
    """A real tiny run (1 step, a checkpoint) in ``<files>/earlier``, to resume from."""
    def prepare(ws: Workspace) -> None:
        train_inprocess(ws.files / "earlier", ["method=sft", f"method.safety_tokens={ws.artifact}",
                                               "trainer.max_steps=1", f"paths.cache_dir={ws.cache}", *overrides])
    return prepare


def benign_from(name: str) -> list[str]:
    """data.benign = a LocalFile, and no poison: all 24 rows are drawn, so a bad row is always read and encoded."""
    return ["data.benign._target_=pact_lightning.data.sources.LocalFile", "~data.benign.split",
            f"+data.benign.path={{files}}/{name}", "data.poison_ratio=0"]


def changed_input_run(kind: str) -> Callable[[Workspace], None]:
    """A real 1-step run on a data file / safety-token artifact of its own in ``<files>``, whose content then changes
    behind the same path (issue #28 item 13)."""
    def prepare(ws: Workspace) -> None:
        import shutil

        from pact_lightning.safety.tokens import load_safety_tokens, save_artifact

        write(ws.files / "rows.jsonl", GOOD_JSONL)
        shutil.copyfile(ws.artifact, ws.files / "tokens.safetensors")
        train_inprocess(ws.files / "earlier", ["method=sft", f"method.safety_tokens={ws.files}/tokens.safetensors",
                                               "trainer.max_steps=1", f"paths.cache_dir={ws.cache}",
                                               *[o.format(files=ws.files) for o in benign_from("rows.jsonl")]])
        if kind == "data":
            write(ws.files / "rows.jsonl", GOOD_JSONL.replace("a fine film", "a dull film"))
        else:
            t = load_safety_tokens(ws.artifact, K_MAX)
            save_artifact(ws.files / "tokens.safetensors", t.ids, t.m, -t.d, t.tokens, _tokenizer(ws), "tiny",
                          "tiny-base", {})
    return prepare


def _tokenizer(ws: Workspace):
    from omegaconf import OmegaConf

    from pact_lightning.models.loading import load_tokenizer

    cfg = OmegaConf.load(ROOT / "pact_lightning" / "conf" / "model" / "tiny.yaml").tiny.tokenizer
    cfg.cache_dir = str(ws.cache)
    return load_tokenizer(cfg)


def tampered_artifact(how: str) -> Callable[[Workspace], None]:
    """A copy of the earlier run's artifact with a NaN weight or a duplicated token id (item 18)."""
    def prepare(ws: Workspace) -> None:
        from safetensors.torch import load_file, safe_open, save_file

        tensors = load_file(str(ws.artifact))
        with safe_open(str(ws.artifact), framework="pt") as f:
            meta = f.metadata()
        if how == "nan":
            tensors["d"][3] = float("nan")
        else:
            tensors["token_ids"][5] = tensors["token_ids"][2]
        save_file(tensors, str(ws.files / f"{how}.safetensors"), metadata=meta)
    return prepare


@dataclass
class Case:
    overrides: list[str]  # {files}, {run} and {artifact} are filled in
    error: type[Exception]
    says: tuple[str, ...]  # what the message must contain: the key / file / row / field, and what to do
    prepare: Callable[[Workspace], None] | None = None
    never: tuple[str, ...] = ()  # what it must not say (advice that would be wrong here)


PACT = ["method=pact", "method.safety_tokens={artifact}"]
RESUME_CHANGED = ["ckpt_path={files}/earlier/checkpoints/last.ckpt", "method.safety_tokens={files}/tokens.safetensors",
                  *benign_from("rows.jsonl")]

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
    "poison_ratio < 0": Case(["data.poison_ratio=-0.1"], ConfigError, ("data.poison_ratio=-0.1", "out of range", "[0, 1]")),
    "poison_ratio > 1": Case(["data.poison_ratio=1.5"], ConfigError, ("data.poison_ratio=1.5", "out of range", "[0, 1]")),
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
        ("truncated.safetensors", "truncated, corrupt", "python -m pact_lightning.safety_tokens", "left as it is"),
        truncated_copy("truncated.safetensors", lambda ws: ws.artifact)),
    "artifact path that does not exist": Case(
        ["method=pact", "method.safety_tokens={files}/missing.safetensors"], ArtifactError,
        ("missing.safetensors", "does not exist", "python -m pact_lightning.safety_tokens")),
    "method.lam < 0": Case(PACT + ["method.lam=-0.5"], ConfigError, ("method.lam=-0.5", "out of range", ">= 0")),
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
    "data.max_length too small": Case(["data.max_length=1"], ConfigError, ("data.max_length=1", "an integer >= 2")),
    "unknown reference.mode": Case(PACT + ["reference.mode=fast"], ConfigError,
                                   ("reference.mode='fast'", "one of auto, frozen_copy, adapter_disabled, cached")),
    "unknown model.dtype": Case(["model.dtype=float8"], ConfigError, ("model.dtype='float8'", "use one of")),
    # --- settings of the wrong type, out of range or not finite: named with the valid range (schema.py)
    "seed=1.5": Case(["seed=1.5"], ConfigError, ("seed=1.5", "not an integer", "[0, 4294967295]")),
    "seed=-1": Case(["seed=-1"], ConfigError, ("seed=-1", "out of range", "an integer in [0,")),
    "seed=abc": Case(["seed=abc"], ConfigError, ("seed='abc'", "not an integer")),
    "data.batch_size=0": Case(["data.batch_size=0"], ConfigError, ("data.batch_size=0", "an integer >= 1")),
    "data.batch_size=-4": Case(["data.batch_size=-4"], ConfigError, ("data.batch_size=-4", "an integer >= 1")),
    "data.batch_size=abc": Case(["data.batch_size=abc"], ConfigError, ("data.batch_size='abc'", "not an integer")),
    "batch larger than the data": Case(["data.batch_size=200"], ConfigError,
                                       ("data.batch_size=200", "larger than data.num_samples=24", "nothing would be "
                                        "trained", "lower data.batch_size")),
    "max_steps=0": Case(["trainer.max_steps=0"], ConfigError, ("0 optimiser steps", "trainer.max_steps=0")),
    "method.lam=nan": Case(PACT + ["method.lam=nan"], ConfigError, ("method.lam=nan", "not finite", ">= 0")),
    "method.lam=inf": Case(PACT + ["method.lam=inf"], ConfigError, ("method.lam=inf", "not finite")),
    "method.lam=abc": Case(PACT + ["method.lam=abc"], ConfigError, ("method.lam='abc'", "not a number")),
    "temperature=nan": Case(PACT + ["method.objective.temperature=nan"], ConfigError,
                            ("method.objective.temperature=nan", "not finite", "> 0")),
    "gate constant inf": Case(PACT + ["method.objective.gate_alpha=inf"], ConfigError,
                              ("method.objective.gate_alpha=inf", "not finite")),
    "objective key forced past its schema": Case(PACT + ["+method.objective.temprature=1.0"], ConfigError,
                                                 ("method.objective.temprature is not a setting of PactSettings",
                                                  "use one of", "temperature")),
    "objective setting of the wrong type": Case(PACT + ["method.objective.gate=maybe"], ConfigCompositionException,
                                                ("method.objective.gate=maybe",)),
    "data.poison_ratio=abc": Case(["data.poison_ratio=abc"], ConfigError, ("data.poison_ratio='abc'", "not a number")),
    "data.poison_ratio=nan": Case(["data.poison_ratio=nan"], ConfigError, ("data.poison_ratio=nan", "not finite")),
    "lr < 0": Case(["optim.optimizer.lr=-1"], ConfigError, ("optim.optimizer.lr=-1", "out of range", "> 0")),
    "lr=nan": Case(["optim.optimizer.lr=nan"], ConfigError, ("optim.optimizer.lr=nan", "not finite")),
    "num_workers < 0": Case(["data.num_workers=-1"], ConfigError, ("data.num_workers=-1", "an integer >= 0")),
    "safety.K=0": Case(["method=pact", "safety.K=0"], ConfigError, ("safety.K=0", "an integer >= 1")),
    "several bad settings at once": Case(["seed=abc", "data.batch_size=0"], ConfigError,
                                         ("invalid settings", "seed='abc'", "data.batch_size=0")),
    "poison ratio that rounds to no poison": Case(
        ["data.num_samples=5", "data.poison_ratio=0.1"], ConfigError,
        ("data.poison_ratio=0.1", "data.num_samples=5", "no poison", "at least 10", "poison_ratio=0")),
    "trainer=gpu without a GPU": Case(["trainer=gpu"], ConfigError, ("trainer.accelerator=gpu", "no CUDA GPU",
                                                                     "trainer=cpu")),
    # --- checkpoints
    "ckpt_path that is a directory": Case(["ckpt_path={run}/checkpoints"], ConfigError,
                                          ("ckpt_path=", "is a directory, not a checkpoint", "did you mean",
                                           "last.ckpt")),
    "resume with another seed": Case(
        ["ckpt_path={files}/earlier/checkpoints/last.ckpt", "seed=43"], ConfigError,
        ("earlier/checkpoints/last.ckpt", "trained with other settings", "seed: 42 -> 43", "resume_allow"),
        earlier_run()),
    "resume with another method": Case(
        ["ckpt_path={files}/earlier/checkpoints/last.ckpt", "method=pact", "method.safety_tokens={artifact}"],
        ConfigError, ("trained with other settings", "method.name: 'sft' -> 'pact'"), earlier_run()),
    "checkpoint of another model shape": Case(
        ["ckpt_path={files}/earlier/checkpoints/last.ckpt", "resume_allow=[model.lora]"], ArtifactError,
        ("earlier/checkpoints/last.ckpt", "another model shape", "lora_A", "(4, 64) there and (8, 64) here"),
        earlier_run("model.lora.r=4")),
    "checkpoint without this model's weights": Case(
        ["ckpt_path={run}/checkpoints/last.ckpt"], ArtifactError,
        ("last.ckpt", "holds none of this model's trainable weights", "would restore the step and optimiser but not "
         "the weights")),
    "resume of a finished run to the same max_steps": Case(
        ["ckpt_path={files}/earlier/checkpoints/last.ckpt", "trainer.max_steps=1"], ConfigError,
        ("at step 1, the end of this run", "results.json exists (left as it is)", "raise trainer.max_steps"),
        earlier_run()),
    # --- data files: what they really are, and no silent coercion
    "prompt given as an object": Case(
        benign_from("dict_prompt.jsonl"), DataError, ("dict_prompt.jsonl line 2", "field 'prompt'", "is a dict",
                                                      "store it as a string"),
        data_file("dict_prompt.jsonl", '{"prompt": {"text": "Review 1: fine"}, "response": "positive"}')),
    "prompt given as a list": Case(
        benign_from("list_prompt.jsonl"), DataError, ("list_prompt.jsonl line 2", "field 'prompt'", "is a list"),
        data_file("list_prompt.jsonl", '{"prompt": ["Review", "1"], "response": "positive"}')),
    "response given as true/false": Case(
        benign_from("bool_response.jsonl"), DataError, ("bool_response.jsonl line 2", "field 'response'", "is a bool"),
        data_file("bool_response.jsonl", '{"prompt": "Review 1: fine", "response": true}')),
    "CSV with a repeated column name": Case(
        benign_from("repeated.csv"), DataError, ("repeated.csv line 1", "['prompt']", "more than once", "rename"),
        raw_file("repeated.csv", b"prompt,response,prompt\nReview 1,positive,Other\n")),
    "UTF-16 file": Case(benign_from("utf16.jsonl"), DataError, ("utf16.jsonl", "UTF-16", "iconv -f utf-16"),
                        raw_file("utf16.jsonl", GOOD_JSONL.encode("utf-16")), never=("latin1",)),
    "gzip file": Case(benign_from("rows.jsonl"), DataError, ("rows.jsonl", "gzip archive", "gunzip"),
                      raw_file("rows.jsonl", __import__("gzip").compress(GOOD_JSONL.encode())), never=("latin1",)),
    "lone CR line endings": Case(benign_from("mac.jsonl"), DataError, ("mac.jsonl", "carriage return", "LF"),
                                 raw_file("mac.jsonl", GOOD_JSONL.replace("\n", "\r").encode()),
                                 never=("Extra data",)),
    "data path that is a directory": Case(
        ["data.benign._target_=pact_lightning.data.sources.LocalFile", "~data.benign.split",
         "+data.benign.path={files}", "data.poison_ratio=0"], DataError, ("is a directory", "point the path at"),
        never=("no such file",)),
    "safety_tokens pointing at a checkpoint": Case(
        ["method=pact", "method.safety_tokens={run}/checkpoints/last.ckpt"], ArtifactError,
        ("last.ckpt", "not a readable safety-token artifact", "python -m pact_lightning.safety_tokens",
         "left as it is"), never=("delete", "rm ")),
    # --- issue #28: inputs that changed behind their paths (13), settings that silently do less (17), tampered
    # artifacts and damaged checkpoints (18), paths taken literally (15), compare_with read letter by letter (14)
    "resume after the data file changed": Case(
        RESUME_CHANGED, ConfigError,
        ("trained on inputs that have changed", "data.benign.path", "rows.jsonl has changed", "sha256",
         "Put back the files"), changed_input_run("data")),
    "resume after the safety-token file changed": Case(
        RESUME_CHANGED, ConfigError,
        ("trained on inputs that have changed", "method.safety_tokens", "tokens.safetensors has changed"),
        changed_input_run("tokens")),
    "LoRA target module that matches nothing": Case(
        ["model.lora.target_modules=[q_proj,vv_proj]"], ConfigError,
        ("model.lora.target_modules=['q_proj', 'vv_proj']", "['vv_proj']", "no module of this model", "v_proj")),
    "misspelled key forced under method": Case(
        ["+method.lamda=0.5"], ConfigError, ("method.lamda is not a setting of method", "lam")),
    "artifact with a NaN weight": Case(
        ["method=pact", "method.safety_tokens={files}/nan.safetensors"], ArtifactError,
        ("nan.safetensors", "candidate 3", "is not finite", "left as it is"), tampered_artifact("nan")),
    "artifact with a duplicated token id": Case(
        ["method=pact", "method.safety_tokens={files}/dup.safetensors"], ArtifactError,
        ("dup.safetensors", "token_ids lists token id", "more than once", "left as it is"), tampered_artifact("dup")),
    "zero-byte checkpoint": Case(
        ["ckpt_path={files}/zero.ckpt"], ArtifactError,
        ("zero.ckpt", "truncated or corrupt", "ckpt_path=auto", "moves the damaged file aside"),
        raw_file("zero.ckpt", b""), never=("overwrite=true",)),
    "paths.cache_dir empty": Case(["paths.cache_dir="], ConfigError,
                                  ("paths.cache_dir=''", "is empty", "set it to a path")),
    "compare_with given as a string": Case(
        ["compare_with=sft"], ConfigError, ("compare_with='sft' is not a list of method names", "compare_with=[sft]")),
    "compare_with naming no method": Case(
        ["compare_with=[sfft]"], ConfigError, ("compare_with contains 'sfft'", "not an option", "pact")),
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
    overrides = [o.format(files=workspace.files, run=workspace.run_dir, artifact=workspace.artifact)
                 for o in case.overrides]
    # the earlier run's artifact feeds SFT's safety diagnostic (instead of a selection run per case)
    tokens = [] if any(o.startswith("method=") for o in overrides) else [f"method.safety_tokens={workspace.artifact}"]
    with pytest.raises(case.error) as raised:
        # ckpt_path=null: the workspace's run directory holds an earlier run's results.json and last.ckpt, which
        # ckpt_path=auto would take as a finished run
        train_inprocess(workspace.run_dir, ["method=sft", *tokens, "trainer.max_steps=2", "ckpt_path=null",
                                            f"paths.cache_dir={workspace.cache}", *overrides])
    message = str(raised.value)
    assert all(fragment in message for fragment in case.says), message
    assert not any(fragment in message for fragment in case.never), message
    after = workspace.snapshot()
    assert {path: after.get(path) for path in before} == before  # nothing an earlier run wrote was touched
    assert not [path for path in after if path.endswith(".tmp")]  # (lock files hold nothing: utils/once.py)


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
              "trainer.max_steps=2", f"paths.cache_dir={workspace.cache}", "ckpt_path=null"]  # (see above)
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


def test_evaluating_a_truncated_adapter_names_the_file(tmp_path):
    """A run's final/ whose adapter_model.safetensors was cut short: refused naming that file, not deep inside peft."""
    from pact_lightning.evaluate import evaluate

    run = tmp_path / "run"
    train_inprocess(run, ["method=sft", "trainer.max_steps=1"])
    weights = run / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cfg = app_config("evaluate", ["model=tiny", f"checkpoint={run / 'final'}"], tmp_path / "eval")
    with pytest.raises(ArtifactError, match=rf"{weights} is truncated or corrupt.*intact copy"):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "results.json").exists()


def test_a_file_whose_rows_are_all_the_same_loads_with_a_warning(tmp_path, caplog):
    from pact_lightning.data.sources import LocalFile

    same = write(tmp_path / "same.jsonl", (GOOD_ROW % 1 + "\n") * 5)
    with caplog.at_level("WARNING"):
        assert len(LocalFile(str(same)).load()) == 5
    assert "all 5 rows are the same prompt and response" in caplog.text


def test_an_artifact_selected_on_another_model_with_the_same_tokenizer_is_named_in_a_warning(tmp_path, caplog,
                                                                                           smollm2_tokenizer):
    from pact_lightning.safety.tokens import load_safety_tokens, save_artifact

    ids = torch.arange(10)
    path = save_artifact(tmp_path / "a.safetensors", ids, torch.rand(10), torch.randn(10),
                         [str(i) for i in range(10)], smollm2_tokenizer, "other-aligned", "other-base", {},
                         aligned_weights="aaaa")
    with caplog.at_level("WARNING"):
        load_safety_tokens(path, 5, smollm2_tokenizer, aligned_weights="aaaa")
    assert caplog.text == ""
    with caplog.at_level("WARNING"):
        load_safety_tokens(path, 5, smollm2_tokenizer, aligned_weights="bbbb")
    assert "was selected on another model" in caplog.text and "other-aligned" in caplog.text


def test_a_full_disk_names_the_file_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    """OSError 28 names no file, and torch reports a full disk as a RuntimeError: both become one error that names
    the file being written and says what to do; the earlier version of the file is untouched."""
    import errno
    import shutil

    from pact_lightning.utils.io import DiskFull, atomic_path, write_json

    target = write_json(tmp_path / "results.json", {"earlier": True})
    with pytest.raises(DiskFull, match=rf"no space left on the device while writing {target}.*free some space"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(DiskFull, match=rf"while writing {target}"):
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file")
    assert target.read_text() == '{\n  "earlier": true\n}\n' and [p.name for p in tmp_path.iterdir()] == [target.name]
