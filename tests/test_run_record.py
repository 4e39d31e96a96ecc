"""Issue #28 items 11, 12, 14, 15, 18, 19: a used run directory is replaced by no path into it, a finished run's record
is never rewritten, a run is finished only when its results describe its weights, paths from the environment are
expanded or refused, faults name their file, caches key on content and honour the umask."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from runs import run_train, train_command, train_inprocess

ONE = ["method=sft", "trainer.max_steps=1"]


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in (".run.lock", "train.log")}


def refused(run_dir: Path, overrides: list[str], env: dict | None = None, cwd: Path = ROOT) -> str:
    proc = subprocess.run(train_command(run_dir, overrides), cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """Two finished 1-step runs, A and B."""
    root = tmp_path_factory.mktemp("finished")
    run_train(root / "a", ONE)
    run_train(root / "b", ONE)
    return root / "a", root / "b"


def test_another_runs_checkpoint_never_replaces_a_finished_run(finished):
    """Item 11: A's checkpoint with B's hydra.run.dir was taken as continuing B; it is refused, B untouched."""
    a, b = finished
    before = digests(b)
    err = refused(b, [*ONE, f"ckpt_path={a}/checkpoints/last.ckpt"])
    assert f"ckpt_path={a}/checkpoints/last.ckpt is a checkpoint of another run directory" in err
    assert "new hydra.run.dir" in err and digests(b) == before


def test_an_explicit_resume_with_other_settings_is_refused_before_the_record_changes(finished):
    """Item 11, another path into a used directory: ckpt_path=last of B with another seed."""
    _, b = finished
    before = digests(b)
    err = refused(b, [*ONE, "ckpt_path=last", "seed=7"])
    assert "was trained with other settings" in err and "seed" in err and digests(b) == before


def test_a_rerun_with_other_settings_is_refused_by_name_and_the_record_kept(finished):
    """Item 14: compare_with corrected, or another trainer setting, on a finished run: refused naming the key, and
    .hydra/config.yaml and overrides.yaml keep what ran; the same rerun does nothing and rewrites nothing."""
    _, b = finished
    before = digests(b)
    err = refused(b, [*ONE, "compare_with=[sft]"])
    assert "compare_with: [] -> ['sft']" in err and "another hydra.run.dir" in err
    err = refused(b, [*ONE, "trainer.gradient_clip_val=0.5"])
    assert "trainer.gradient_clip_val" in err
    assert digests(b) == before
    run_train(b, ONE)  # the same settings: nothing to do
    assert digests(b) == before


def test_a_finished_run_trained_further_is_not_finished_until_its_new_results(tmp_path, monkeypatch):
    """Item 12: a finished run resumed to more steps and killed before its results: the old results.json no longer
    says the run is finished (it is kept under superseded/); the rerun evaluates the new weights."""
    from pact_lightning import compare

    run = tmp_path / "run"
    first = train_inprocess(run, ONE)
    old = (run / "results.json").read_text()

    def killed(*args, **kwargs):
        raise SystemExit(143)

    monkeypatch.setattr(compare.run_results, "write", killed)
    with pytest.raises(SystemExit):
        train_inprocess(run, ["method=sft", "trainer.max_steps=2", "ckpt_path=last"])
    monkeypatch.undo()
    assert not (run / "results.json").exists()
    (kept,) = (run / "superseded").glob("step-1-*/results.json")
    assert kept.read_text() == old
    again = train_inprocess(run, ["method=sft", "trainer.max_steps=2"])  # ckpt_path=auto: not "nothing to do"
    assert first.train["global_step"] == 1 and again.train["global_step"] == 2
    assert json.loads((run / "results.json").read_text())["train"]["global_step"] == 2


def test_final_is_swapped_in_one_step_or_put_back_after_a_kill(tmp_path, monkeypatch):
    """Item 12: killed while final/ is replaced, final/ was missing; now it is swapped atomically, and where the
    system cannot, the moved-aside copy is put back by the next write or recover_dir."""
    from pact_lightning.utils import io

    final = tmp_path / "final"
    with io.atomic_dir(final) as tmp:
        (tmp / "w").write_text("old")
    with io.atomic_dir(final) as tmp:
        (tmp / "w").write_text("new")
    assert (final / "w").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["final"]
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    real = os.replace

    def kill_after_moving_aside(src, dst):
        real(src, dst)
        if str(dst).endswith(".old"):
            raise KeyboardInterrupt  # killed between the two renames

    monkeypatch.setattr(io.os, "replace", kill_after_moving_aside)
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_dir(final) as tmp:
            (tmp / "w").write_text("newer")
    monkeypatch.setattr(io.os, "replace", real)
    assert not final.exists()
    io.recover_dir(final)
    assert (final / "w").read_text() == "new"


def test_an_empty_pact_cache_is_refused_before_anything_is_written(tmp_path):
    """Item 15: PACT_CACHE= wrote caches at the filesystem root and the safety tokens into the launch folder."""
    env = {**os.environ, "PACT_CACHE": "", "PYTHONPATH": str(ROOT)}
    err = refused(tmp_path / "run", ONE, env=env, cwd=tmp_path)
    assert "PACT_CACHE is set but empty" in err and "paths.cache_dir=''" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_tilde_run_dir_is_refused_and_a_tilde_cache_expanded(tmp_path, monkeypatch):
    """Item 15: hydra.run.dir=~/x created a folder named '~'; PACT_CACHE='~/x' too."""
    from conftest import compose

    from pact_lightning.schema import validate

    command = [a for a in train_command(tmp_path, ONE) if not a.startswith("hydra.run.dir=")]
    for extra, env in ((["hydra.run.dir='~/pact_run_dir_test'"], {}), ([], {"PROJECT_ROOT": "~"})):
        proc = subprocess.run(command + extra, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **env})
        assert proc.returncode != 0 and "has a '~' that nothing expands" in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "~").exists()
    monkeypatch.setenv("PACT_CACHE", "~/pact_cache_x")
    cfg = compose("train", ["model=tiny"], output_dir=tmp_path / "r")
    validate(cfg)
    home = os.path.expanduser("~")
    assert cfg.paths.cache_dir == f"{home}/pact_cache_x" and cfg.reference.cache_dir.startswith(home)


def test_the_resume_command_quotes_a_non_ascii_run_dir_for_hydra():
    """Item 18: the logged resume command failed for a run dir with non-ASCII characters."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from pact_lightning.utils.checkpoints import hydra_value

    for path in ("/tmp/runs/café run", "/tmp/it's", "/tmp/plain-1.0"):
        arg = shlex.split(shlex.join([f"hydra.run.dir={hydra_value(path)}"]))[0]
        (override,) = OverridesParser.create().parse_overrides([arg])
        assert override.value() == path


def test_a_full_disk_during_a_safetensors_write_names_the_file(tmp_path, monkeypatch, smollm2_tokenizer):
    """Item 18: SafetensorError … No space left on device named no file."""
    from safetensors import SafetensorError

    from pact_lightning.safety import tokens
    from pact_lightning.utils.io import DiskFull

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")

    monkeypatch.setattr(tokens, "save_file", full)
    target = tmp_path / "s.safetensors"
    with pytest.raises(DiskFull, match=rf"while writing {target}.*free some space"):
        tokens.save_artifact(target, torch.arange(3), torch.rand(3), torch.rand(3), ["a", "b", "c"],
                             smollm2_tokenizer, "x", "y", {})
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_evaluation_cache_entry_is_moved_aside_and_rebuilt(tmp_path):
    """Item 18: a damaged entry failed every run after its fit; now it is a miss (kept aside), never a failure."""
    from pact_lightning.eval.cache import read_entry

    fp = {"format": "x", "weights": "w"}
    entry = tmp_path / "key"
    entry.mkdir()
    (entry / "metrics.json").write_text('{"harmful_score": 1')  # truncated
    (entry / "fingerprint.json").write_text(json.dumps(fp))
    assert read_entry(entry, fp) is None and not entry.exists()
    assert [p.name.split(".")[1].split("-")[0] for p in tmp_path.iterdir()] == ["damaged"]
    entry.mkdir()
    (entry / "metrics.json").write_text('{"harmful_score": 1}')
    (entry / "fingerprint.json").write_text(json.dumps(fp))
    (entry / "generations.jsonl").write_text("")
    assert read_entry(entry, fp) == {"harmful_score": 1}


def test_one_unreadable_results_json_is_listed_and_the_report_goes_on(tmp_path):
    """Item 18: one bad results.json stopped the whole report."""
    from pact_lightning.report.collect import collect

    train_inprocess(tmp_path / "sweep" / "0_good", ONE)
    bad = tmp_path / "sweep" / "1_bad"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    runs = {Path(r.run_dir).name: r for r in collect(tmp_path / "sweep")}
    assert runs["0_good"].status in ("ok", "no_eval")
    assert runs["1_bad"].status == "failed" and "results.json is not valid JSON" in runs["1_bad"].note


def test_evaluating_a_run_directory_says_pass_final(tmp_path):
    """Item 18: evaluate checkpoint=<run dir> gave a raw transformers error."""
    from pact_lightning.errors import ArtifactError
    from pact_lightning.evaluate import evaluate
    from runs import app_config

    run = tmp_path / "run"
    train_inprocess(run, ONE)
    cfg = app_config("evaluate", ["model=tiny", f"checkpoint={run}"], tmp_path / "eval")
    with pytest.raises(ArtifactError, match=rf"it looks like a run directory: pass checkpoint={run}/final"):
        evaluate(cfg)


def test_cache_files_follow_the_umask(tmp_path):
    """Item 19: every safetensors file was written 0600, unreadable to the other accounts of a shared cache."""
    from safetensors.torch import save_file

    from pact_lightning.utils.io import atomic_dir, atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.safetensors") as tmp:
            save_file({"x": torch.ones(1)}, str(tmp))
        with atomic_dir(tmp_path / "d") as tmp:
            save_file({"x": torch.ones(1)}, str(tmp / "b.safetensors"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d" / "b.safetensors").stat().st_mode & 0o777 == 0o644


def test_cache_keys_do_not_depend_on_where_the_cache_is(tmp_path):
    """Item 19: the keys held the cache's absolute path, so moving the cache rebuilt the selection and alignment."""
    from omegaconf import OmegaConf

    from pact_lightning.alignment import aligned_config
    from pact_lightning.models.loading import weights_key

    model = OmegaConf.load(ROOT / "pact_lightning" / "conf" / "model" / "tiny.yaml")
    keys = []
    for cache in (tmp_path / "home" / "cache", tmp_path / "shared" / "cache"):
        cfg = OmegaConf.merge(model, {"cache_dir": str(cache), "tiny": {"tokenizer": {"cache_dir": str(cache)}}})
        keys.append((weights_key(cfg), weights_key(aligned_config(cfg, cache / "aligned" / "tiny-0123abcd"))))
    assert keys[0] == keys[1] and str(tmp_path) not in json.dumps(keys)


def sitecustomize(folder: Path, source: str) -> dict:
    """The environment of an app subprocess that runs ``source`` as its ``sitecustomize`` at startup."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(source)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def multirun(command: list[str]) -> list[str]:
    """``python -m pact_lightning.train -m <overrides>`` (Hydra's flags come before the overrides)."""
    return [*command[:3], "-m", *command[3:]]


# A Python without hydra-submitit-launcher and submitit: their imports fail, and Hydra's plugin scan (pkgutil) no
# longer lists the plugin package, as where the [cluster] extra was never installed.
WITHOUT_SUBMITIT = '''
import importlib.abc, pkgutil, sys
HIDDEN = ("submitit", "hydra_plugins.hydra_submitit_launcher")
def hidden(name):
    return any(name == h or name.startswith(h + ".") for h in HIDDEN)
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if hidden(name):
            raise ImportError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
_iter_modules = pkgutil.iter_modules
pkgutil.iter_modules = lambda path=None, prefix="": (m for m in _iter_modules(path, prefix)
                                                     if not hidden(prefix + m.name))
'''


@pytest.mark.parametrize("launcher", ["slurm", "submitit_local"])
def test_a_submitit_launcher_without_the_cluster_extra_says_what_to_install(tmp_path, launcher):
    """launcher=slurm without hydra-submitit-launcher failed inside Hydra ("Could not find
    'hydra/launcher/submitit_slurm'") with no hint; it names the extra before anything is written."""
    env = sitecustomize(tmp_path / "site", WITHOUT_SUBMITIT)
    sweep = tmp_path / "sweep"
    command = multirun([a for a in train_command(tmp_path / "run", ONE) if not a.startswith("hydra.run.dir=")])
    proc = subprocess.run([*command, f"launcher={launcher}", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert f"launcher={launcher} needs Hydra's submitit launcher" in proc.stderr, proc.stderr[-3000:]
    assert 'pip install -e ".[cluster]"' in proc.stderr and "pact_lightning[cluster]" in proc.stderr
    assert "Traceback" not in proc.stderr and "Error importing" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


# shutil.disk_usage reports 1000 bytes free on every filesystem
DISK_FULL = '''
import collections, shutil
shutil.disk_usage = lambda path: collections.namedtuple("usage", "total used free")(10**9, 10**9 - 1000, 1000)
'''


def test_a_run_or_sweep_directory_on_a_full_disk_is_refused_before_hydra_writes(tmp_path):
    """A run dir on a full disk failed inside Hydra with a bare errno 28 and left a zero-byte .hydra/config.yaml; it
    is refused, naming the directory, the free bytes and what to do, and nothing is written there."""
    env = sitecustomize(tmp_path / "site", DISK_FULL)
    run, sweep = tmp_path / "out" / "run", tmp_path / "out" / "sweep"
    single = subprocess.run(train_command(run, ONE), cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=env)
    multi = subprocess.run([*multirun(train_command(run, ONE)), f"hydra.sweep.dir={sweep}", "seed=1,2"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600, env=env)
    for proc, directory in ((single, run), (multi, sweep)):
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"{directory} is on a filesystem with 1000 bytes free" in proc.stderr, proc.stderr[-3000:]
        assert "paths.min_free_mb=64 MiB" in proc.stderr and "Free space on that disk" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob(".hydra"))


def test_the_free_space_floor_is_a_checked_setting(tmp_path, monkeypatch):
    import collections
    import shutil

    from omegaconf import OmegaConf

    from pact_lightning.errors import ConfigError
    from pact_lightning.rundir import free_space_problem

    monkeypatch.setattr(shutil, "disk_usage", lambda path: collections.namedtuple("u", "total used free")(9, 8, 2**20))
    paths = lambda floor: OmegaConf.create({"paths": {"min_free_mb": floor}})  # noqa: E731
    assert free_space_problem(tmp_path / "new" / "run", paths(2)).startswith(f"{tmp_path}/new/run is on a filesystem")
    assert free_space_problem(tmp_path, paths(1)) is None
    assert free_space_problem(tmp_path, paths(0)) is None and free_space_problem(tmp_path, paths(None)) is None
    with pytest.raises(ConfigError, match=r"paths.min_free_mb=-1 is out of range"):
        free_space_problem(tmp_path, paths(-1))


def test_a_finished_run_trained_further_retrains_its_comparison_runs(tmp_path, monkeypatch):
    """Item 12, the comparison runs: a finished run with compare_with resumed to more steps supersedes its
    compare/<method>/ results at once (a kill before they retrain leaves none that compared with the old weights), and
    the rerun trains and evaluates them to the new step count."""
    import importlib

    run = tmp_path / "run"
    common = ["method=kl_full", "compare_with=[sft]"]
    first = train_inprocess(run, [*common, "trainer.max_steps=2"])
    assert first.train["global_step"] == 2 and first.compare["sft"].train["global_step"] == 2
    old = (run / "compare" / "sft" / "results.json").read_text()

    def killed(*args, **kwargs):
        raise SystemExit(143)

    monkeypatch.setattr(importlib.import_module("pact_lightning.train"), "finish", killed)  # after the main run's fit
    with pytest.raises(SystemExit):
        train_inprocess(run, [*common, "trainer.max_steps=3", "ckpt_path=last"])
    monkeypatch.undo()
    assert not (run / "results.json").exists() and not (run / "compare" / "sft" / "results.json").exists()
    (kept,) = (run / "compare" / "sft" / "superseded").glob("step-2-*/results.json")
    assert kept.read_text() == old
    again = train_inprocess(run, [*common, "trainer.max_steps=3"])  # ckpt_path=auto: the requeued job
    main = json.loads((run / "results.json").read_text())
    sub = json.loads((run / "compare" / "sft" / "results.json").read_text())
    assert again.train["global_step"] == 3 and main["train"]["global_step"] == 3
    assert sub["train"]["global_step"] == 3 and main["compare"]["sft"]["train"]["global_step"] == 3


def test_a_resume_whose_reference_cache_changed_is_refused_naming_the_file(tmp_path, monkeypatch):
    """Item 13, the reference cache: a run on reference.mode=cached stopped after 2 steps; its cache file is swapped
    for one with other rows under the same name and fingerprint (it loads as valid); the resume is refused, naming
    the file, before a training step runs."""
    import importlib

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from pact_lightning.errors import ConfigError
    from pact_lightning.models.module import PactModule

    run, cache = tmp_path / "run", tmp_path / "refcache"
    common = ["method=pact", "safety.K=8", "reference.mode=cached", f"reference.cache_dir={cache}"]

    def stopped(*args, **kwargs):
        raise SystemExit(143)

    monkeypatch.setattr(importlib.import_module("pact_lightning.train"), "finish", stopped)  # after 2 steps
    with pytest.raises(SystemExit):
        train_inprocess(run, [*common, "trainer.max_steps=2"])
    monkeypatch.undo()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["pact_inputs"]["reference.cache"]
    (cache_file,) = cache.glob("*.safetensors")
    with safe_open(str(cache_file), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(cache_file))
    name = next(k for k, v in tensors.items() if k != "offsets" and v.is_floating_point())
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(cache_file), metadata=metadata)
    monkeypatch.setattr(PactModule, "training_step", lambda *a, **k: pytest.fail("a training step ran"))
    with pytest.raises(ConfigError) as raised:
        train_inprocess(run, [*common, "trainer.max_steps=3", "ckpt_path=last"])
    assert str(cache_file) in str(raised.value) and "reference.cache" in str(raised.value), raised.value


def test_a_damaged_reference_evaluation_entry_is_moved_aside_before_fit(tmp_path, monkeypatch, caplog):
    """Item 18, before fit: the reference's evaluation cache entry is truncated; the next run moves it aside with a
    warning naming it before its fit starts, and succeeds, with the entry evaluated and cached again."""
    import logging

    from pact_lightning.eval.cache import read_entry
    from pact_lightning.models.module import PactModule

    small_eval = ["eval.after_fit=true", "eval.diagnostics=false", "eval/generation=sampled",
                  "eval.generation.max_new_tokens=8", "eval.evaluator.harmful.strongreject.limit=2",
                  "eval.evaluator.benign.lookalike.limit=1", "eval.evaluator.benign.heldout.limit=1",
                  "eval.evaluator.benign.sensitive.limit=1", "eval.evaluator.task.limit=2"]
    common = [*ONE, *small_eval, f"eval.cache_dir={tmp_path / 'evals'}", "compare_with=[]"]
    train_inprocess(tmp_path / "first", common)
    (entry,) = (tmp_path / "evals").iterdir()
    (entry / "metrics.json").write_text((entry / "metrics.json").read_text()[:10])  # truncated
    seen_at_fit: list[list[str]] = []
    on_train_start = PactModule.on_train_start

    def marked(self):
        seen_at_fit.append([r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()])
        return on_train_start(self)

    monkeypatch.setattr(PactModule, "on_train_start", marked)
    with caplog.at_level(logging.WARNING):
        second = train_inprocess(tmp_path / "second", common)
    (warned,) = seen_at_fit[0]
    assert str(entry) in warned and "moved to" in warned
    assert second.reference is not None and read_entry(entry, None) is not None
    assert len(list((tmp_path / "evals").glob(f"{entry.name}.damaged-*"))) == 1
