"""Every preset composes (and resolves), ``method.objective`` typed by its objective's settings; trainers and
strategies instantiate where no GPU is needed; launcher and hparams_search presets carry the settings their docs
promise; the W&B naming resolvers; the DDP-in-multirun decision."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict, read_write
from omegaconf.errors import ConfigKeyError

import pact_lightning.app  # noqa: F401 - registers the config's resolvers
from conftest import CONF, compose
from pact_lightning.utils.precision import resolve as resolve_precision
from pact_lightning import sweep
from pact_lightning.errors import ConfigError
from pact_lightning.objectives.settings import SETTINGS
from pact_lightning.schema import validate

# the selectable presets (experiment=glob(*)); pact_lightning/conf/experiment/paper/ holds their shared parts
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "launcher").glob("*.yaml"))
NEEDS_GPU = {"gpu", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"}
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


def resolved(cfg) -> dict:
    """The job config, every interpolation resolved (what the run sees); the hydra node stays as Hydra uses it."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return OmegaConf.to_container(job, resolve=True)


APPS = sorted(p.stem for p in CONF.glob("*.yaml"))


def composition(path: Path) -> tuple[str, list[str]]:
    """How a config file is used: an app's primary config on its own, a group option selected in `train`."""
    parts = path.relative_to(CONF).with_suffix("").parts
    if len(parts) == 1:
        return parts[0], []
    if parts[0] in ("hydra", "local"):  # in every app's defaults list (local: optional, the user's site settings)
        return "train", []
    if parts[0] == "experiment" and len(parts) > 2:  # paper/*: parts the paper presets share, through one of them
        part = "/".join(parts[1:])
        users = [p.stem for p in sorted((CONF / "experiment").glob("*.yaml")) if f"- {part}\n" in p.read_text()]
        return "train", [f"experiment={users[0]}"]
    return "train", [f"{'/'.join(parts[:-1])}={parts[-1]}"]  # eval/judge=guard: a group nested in eval


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_every_file_in_conf_composes_and_resolves(tmp_path, path):
    """litgpt's config-hub test for pact_lightning/conf/: every file, through the app or group option that loads it."""
    app, overrides = composition(path)
    assert app in APPS
    job = resolved(compose(app, overrides, output_dir=tmp_path))
    assert job["task_name"] == app and job["paths"]["output_dir"] == str(tmp_path)


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_every_file_in_conf_composes_in_struct_mode_with_a_typed_objective(tmp_path, path):
    """Every preset, composed as above: struct mode; where it has a method, ``method.objective`` is the settings
    dataclass of the method YAML (its schema), which refuses a key it does not declare — what Hydra runs into when a
    later YAML or override carries one — and every value passes the checks the apps run first (schema.validate)."""
    app, overrides = composition(path)
    cfg = compose(app, overrides, output_dir=tmp_path)
    assert OmegaConf.is_struct(cfg)
    if "method" not in cfg:
        return
    objective, settings = cfg.method.objective, SETTINGS[cfg.hydra.runtime.choices["method"]]
    assert OmegaConf.get_type(objective) is settings and OmegaConf.is_struct(objective)
    with pytest.raises(ConfigKeyError, match=f"Key 'not_a_setting' not in '{settings.__name__}'"):
        OmegaConf.merge(objective, {"not_a_setting": 1})
    validate(cfg)


def test_every_method_yaml_extends_its_objective_settings():
    assert sorted(p.stem for p in (CONF / "method").glob("*.yaml")) == sorted(SETTINGS)


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_an_unknown_or_stale_objective_key_is_refused_with_the_key_named(tmp_path, method):
    """A stale key in a YAML preset and an override of a key the objective does not declare fail at composition
    (Hydra's message); ``+key=`` forces the key past the schema (Hydra's documented force-add), and the check every app
    runs before its task refuses it."""
    presets = tmp_path / "conf" / "experiment"
    presets.mkdir(parents=True)
    (presets / "stale.yaml").write_text("# @package _global_\nmethod:\n  objective:\n    stale_key: 1\n")
    name = SETTINGS[method].__name__
    with pytest.raises(ConfigCompositionException, match=f"Key 'stale_key' not in '{name}'"):
        compose("train", [f"method={method}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=stale"])
    with pytest.raises(ConfigCompositionException, match="Could not override 'method.objective.stale_key'"):
        compose("train", [f"method={method}", "method.objective.stale_key=1"])
    with pytest.raises(ConfigCompositionException) as raised:
        compose("train", [f"method={method}", "method.objective={stale_key: 1}"])
    assert f"Key 'stale_key' not in '{name}'" in str(raised.value.__cause__)
    cfg = compose("train", [f"method={method}", "+method.objective.stale_key=1"])
    with pytest.raises(ConfigError, match=f"method.objective.stale_key is not a setting of {name}; use one of lam"):
        validate(cfg)


def test_an_objective_setting_of_the_wrong_type_or_range_names_the_key():
    with pytest.raises(ConfigCompositionException, match="method.objective.gate=maybe"):
        compose("train", ["method=pact", "method.objective.gate=maybe"])
    with pytest.raises(ConfigCompositionException, match="method.objective.gate_n=1.5"):
        compose("train", ["method=pact", "method.objective.gate_n=1.5"])
    with pytest.raises(ConfigError, match=r"method.objective.prox_warmup_frac=1.5 is out of range; use a finite "
                                          r"number in \[0, 1\]"):
        validate(compose("train", ["method=lisa", "method.objective.prox_warmup_frac=1.5"]))


def test_the_paper_presets_have_no_temperature_outside_the_objective(tmp_path):
    """The dead ``method.temperature`` (no code read it) is gone: an override of it is refused, not ignored; the
    objective's T is ``method.objective.temperature``."""
    with pytest.raises(ConfigCompositionException, match="Could not override 'method.temperature'"):
        compose("train", ["experiment=paper_llama_sst2", "method.temperature=1.0"], output_dir=tmp_path)
    cfg = compose("train", ["experiment=paper_llama_sst2", "method.objective.temperature=1.0"], output_dir=tmp_path)
    assert "temperature" not in cfg.method and cfg.method.objective.temperature == 1.0
    baseline = compose("train", ["experiment=paper_llama_sst2", "method=sft"], output_dir=tmp_path)  # -m method=pact,sft
    assert OmegaConf.get_type(baseline.method.objective) is SETTINGS["sft"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds(tmp_path, name):
    """Composes, resolves, and its DataModule, evaluator (sources and judge load lazily) and — without a GPU only
    where it runs on the CPU — its Trainer instantiate."""
    from pact_lightning import build

    cfg = compose("train", [f"experiment={name}"], output_dir=tmp_path)
    job = resolved(cfg)
    assert job["model"]["name"] and job["method"]["objective"]["_target_"]
    assert cfg.hydra.runtime.choices.experiment == name
    assert instantiate(cfg.data).num_samples == cfg.data.num_samples
    assert build.evaluator(cfg.eval).sources["harmful"]
    if cfg.trainer.accelerator != "gpu" or torch.cuda.is_available():
        instantiate(cfg.trainer, logger=False, precision=resolve_precision(cfg.trainer.precision,
                                                                           cfg.trainer.accelerator)[0])


def test_paper_presets_pin_the_authors_grid(tmp_path):
    """docs/method.md §5, §7: one preset per model × task, each sweeping p; the shared hyperparameters."""
    for model in ("llama", "qwen", "gemma"):
        for task, ps in (("sst2", "0,0.05,0.1"), ("agnews", "0,0.05,0.1"), ("agnews_beavertails", "0.2,0.3"),
                         ("gsm8k", "0,0.05,0.1")):
            cfg = compose("train", [f"experiment=paper_{model}_{task}"], output_dir=tmp_path)
            assert cfg.hydra.sweeper.params["data.poison_ratio"] == ps
            assert cfg.data.name == task and cfg.model.name.startswith(model)
    job = resolved(compose("train", ["experiment=paper_llama_sst2"], output_dir=tmp_path))
    assert job["model"]["lora"] == {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    assert (job["optim"]["optimizer"]["lr"], job["optim"]["scheduler"]["gamma"]) == (3e-5, 0.85)
    assert (job["trainer"]["strategy"], job["trainer"]["devices"], job["trainer"]["max_epochs"],
            job["trainer"]["precision"]) == ("ddp", 2, 3, "auto")  # bf16-mixed on GPUs with bf16
    assert (job["data"]["num_samples"], job["data"]["batch_size"], job["data"]["max_length"]) == (5000, 16, 512)
    assert (job["method"]["lam"], job["method"]["objective"]["temperature"], job["method"]["num_safety_tokens"]) == (
        1.0, 2.0, 50)  # T = 2: PactSettings' default
    assert (job["safety"]["K"], job["safety"]["max_resp_len"]) == (512, 64)
    evaluator = job["eval"]["evaluator"]
    assert sorted(evaluator["harmful"]) == ["harmbench", "jailbreakbench", "strongreject"]
    assert evaluator["judge"]["model_name_or_path"] == "meta-llama/Llama-Guard-3-8B"
    assert (evaluator["do_sample"], evaluator["max_new_tokens"]) == (False, 1024)


@pytest.mark.parametrize("name", TRAINERS)
def test_every_trainer_preset_composes(tmp_path, name):
    cfg = compose("train", [f"trainer={name}"], output_dir=tmp_path)
    trainer = resolved(cfg)["trainer"]
    assert trainer["_target_"] == "lightning.pytorch.trainer.Trainer"
    if name in NEEDS_GPU:  # DeepSpeed's bf16 mode is not mixed precision: its presets run in float32
        assert trainer["accelerator"] == "gpu"
        expected = {"fsdp": "bf16-mixed", "gpu": "auto", "ddp": "auto"}.get(name, "32-true")  # auto: bf16 if supported
        assert trainer["precision"] == expected


@pytest.mark.parametrize("name", sorted(set(TRAINERS) - NEEDS_GPU))
def test_cpu_trainers_instantiate(tmp_path, name):
    cfg = compose("train", [f"trainer={name}"], output_dir=tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, precision=resolve_precision(cfg.trainer.precision)[0])
    assert trainer.num_devices == cfg.trainer.devices
    if name == "ddp_cpu":
        from lightning.pytorch.strategies import DDPStrategy

        assert isinstance(trainer.strategy, DDPStrategy) and trainer.strategy._start_method == "popen"


def test_fsdp_strategy_instantiates_with_the_decoder_layer_policy(tmp_path):
    """FSDP needs a GPU to train; its strategy object, wrap policy included, builds anywhere."""
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaDecoderLayer,
        LlamaForCausalLM,
    )

    cfg = compose("train", ["trainer=fsdp"], output_dir=tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["use_orig_params"] is True
    policy = strategy.kwargs["auto_wrap_policy"]
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    wrapped = {type(m) for m in model.modules() if policy(module=m, recurse=False, nonwrapped_numel=0)}
    assert wrapped == {LlamaDecoderLayer}


@pytest.mark.skipif(not HAS_DEEPSPEED, reason="deepspeed is not installed (pip install deepspeed)")
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_strategies_instantiate(tmp_path, stage):
    cfg = compose("train", [f"trainer=deepspeed_zero{stage}"], output_dir=tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy.config["zero_optimization"]["stage"] == stage


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", sorted(NEEDS_GPU - ({"deepspeed_zero2", "deepspeed_zero3"} if not HAS_DEEPSPEED else set())))
def test_gpu_trainers_instantiate(tmp_path, name):
    cfg = compose("train", [f"trainer={name}", "trainer.devices=1"], output_dir=tmp_path)
    assert instantiate(cfg.trainer, logger=False, precision=resolve_precision(cfg.trainer.precision, "gpu")[0]
                       ).num_devices == 1


def test_deepspeed_presets_differ_only_in_the_zero_stage(tmp_path):
    two, three = (resolved(compose("train", [f"trainer=deepspeed_zero{s}"], output_dir=tmp_path))["trainer"]
                  for s in (2, 3))
    assert two["strategy"].pop("stage") == 2 and three["strategy"].pop("stage") == 3
    assert two == three


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_launcher_composes(tmp_path, name):
    cfg = compose("train", [f"launcher={name}"], output_dir=tmp_path)
    assert cfg.hydra.runtime.choices.launcher == name


def test_slurm_launcher_asks_for_one_task_per_device(tmp_path):
    cfg = compose("train", ["launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                            "hydra.launcher.partition=gpu", "hydra.launcher.account=proj"], output_dir=tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert (launcher["partition"], launcher["account"]) == ("gpu", "proj")
    assert launcher["timeout_min"] > 0 and launcher["mem_gb"] > 0


def test_slurm_launcher_requeues_and_signals_before_the_time_limit(tmp_path):
    cfg = compose("train", ["launcher=slurm"], output_dir=tmp_path)
    assert cfg.hydra.launcher.max_num_timeout > 0 and cfg.hydra.launcher.signal_delay_s > 0
    assert cfg.ckpt_path == "auto"  # the requeued job resumes from its own last.ckpt


def test_evaluate_runs_under_the_slurm_launcher_on_gpus(tmp_path):
    """Re-judging a sweep's adapters: `python -m pact_lightning.evaluate -m checkpoint=a,b,… launcher=slurm
    trainer=gpu` (docs/cluster.md)."""
    cfg = compose("evaluate", ["launcher=slurm", "trainer=gpu", "eval/judge=guard"], output_dir=tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (1, 1, 1)
    assert cfg.eval.cache  # the reference (the same weights at every point) is judged once


def test_plain_hydra_launcher_groups_compose(tmp_path):
    for launcher in ("submitit_slurm", "submitit_local"):
        cfg = compose("train", [f"hydra/launcher={launcher}", "hydra.launcher.tasks_per_node=2"], output_dir=tmp_path)
        assert cfg.hydra.launcher.tasks_per_node == 2


def test_lambda_optuna_searches_lambda_under_a_harmful_score_ceiling(tmp_path):
    cfg = compose("train", ["hparams_search=lambda_optuna"], output_dir=tmp_path)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.mode.name == "MULTIRUN"
    assert list(cfg.hydra.sweeper.params) == ["method.lam"]
    assert cfg.objective.harmful_score_ceiling > 0


def test_objective_prefers_any_run_under_the_ceiling():
    cfg = OmegaConf.create({"objective": {"harmful_score_ceiling": 10.0}})

    def score(hs, acc):
        return sweep.objective(cfg, {"final": {"harmful_score": hs, "task_acc": acc}})

    assert score(5.0, 80.0) == 80.0
    assert score(10.0, 0.0) == 0.0 > score(12.0, 99.0) == -2.0 > score(30.0, 99.0)
    no_ceiling = OmegaConf.create({"objective": {"harmful_score_ceiling": None}})
    assert sweep.objective(no_ceiling, {"final": {"harmful_score": 90.0, "task_acc": 70.0}}) == 70.0
    assert sweep.objective(cfg, {"train": {"train/loss": 1.5}}) == 1.5  # no evaluation: the last train loss


# ------------------------------------------------------------------------------------------ W&B names and DDP in -m
def as_multirun_job(cfg, sweep_dir: Path, job_dir: Path) -> None:
    """Make ``cfg``'s HydraConfig look like job ``job_dir`` of a multirun in ``sweep_dir``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    with read_write(cfg.hydra), open_dict(cfg.hydra):  # HydraConfig made the hydra node read-only
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.runtime.output_dir = str(job_dir)
    HydraConfig.instance().set_config(cfg)


def test_wandb_group_name_and_tags(tmp_path):
    cfg = compose("train", ["experiment=smollm2_sweep", "method.lam=0.5", "data.poison_ratio=0.3", "seed=7",
                            "model=tiny"], output_dir=tmp_path / "single")
    wandb = resolved(cfg)["logger"]["wandb"]
    assert wandb["group"] is None  # a plain run is in no group
    assert wandb["name"] == "method.lam=0.5,data.poison_ratio=0.3,seed=7,model=tiny"  # as given; experiment excluded
    assert {"experiment=smollm2_sweep", "method=pact", "lam=0.5", "k=50", "p=0.3", "seed=7", "model=tiny",
            "task=sentiment"} <= set(wandb["tags"])
    as_multirun_job(cfg, tmp_path / "2026-11-28_14-00-00", tmp_path / "2026-11-28_14-00-00" / "3_x")
    assert resolved(cfg)["logger"]["wandb"]["group"] == "train-2026-11-28_14-00-00"


def test_tags_record_the_setting_as_results_json_does(tmp_path):
    """SFT: λ = 0 whatever is configured, no k (S only feeds its diagnostic); PACT: both as configured."""
    tags = resolved(compose("train", ["method=sft", "method.lam=0.5"], output_dir=tmp_path))["logger"]["wandb"]["tags"]
    assert "method=sft" in tags and "lam=0" in tags and not any(t.startswith(("lam=0.5", "k=")) for t in tags)
    tags = resolved(compose("train", ["method=pact", "method.lam=0.5"], output_dir=tmp_path))["logger"]["wandb"]["tags"]
    assert {"method=pact", "lam=0.5", "k=50"} <= set(tags)


@pytest.mark.parametrize("trainer, env, expected", [
    ("cpu", {}, False),                               # one process: nothing to start
    ("ddp_cpu", {}, True),                            # Lightning would re-run sys.argv: run the point as a child
    ("ddp_cpu", {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_PROCID": "0",
                 "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "train"}, False),  # SLURM started them
    ("ddp_cpu", {"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "GROUP_RANK": "0",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}, False),                    # torchrun did
])
def test_which_multirun_jobs_run_their_point_as_a_child(tmp_path, monkeypatch, trainer, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = compose("train", [f"trainer={trainer}"], output_dir=tmp_path / "0")
    assert sweep.starts_own_ranks(cfg) is False  # a single run: Lightning's own re-run of sys.argv is right
    as_multirun_job(cfg, tmp_path, tmp_path / "0")
    assert sweep.starts_own_ranks(cfg) is expected


def test_job_directory_names_keep_the_swept_keys_and_fit_a_file_name(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    short = compose("train", ["method.lam=0.5", "data.poison_ratio=0.3"], output_dir=tmp_path)
    with read_write(short.hydra), open_dict(short.hydra):
        short.hydra.job.num = 3
    HydraConfig.instance().set_config(short)
    assert sweep.job_dirname() == "3_method.lam=0.5,data.poison_ratio=0.3"
    long = compose("train", ["method.lam=0.5", "data.poison_ratio=0.3", *[f"+extra.key_{i}=value_{i}" for i in range(20)]],
                   output_dir=tmp_path)
    with read_write(long.hydra), open_dict(long.hydra):
        long.hydra.job.num = 4
    HydraConfig.instance().set_config(long)
    name = sweep.job_dirname()
    assert name.startswith("4_method.lam=0.5,data.poison_ratio=0.3,+extra.key_0=value_0") and len(name) == 2 + 120
    assert sweep.shorten(sweep.run_name()) != sweep.shorten(sweep.run_name() + ",x=1")  # the hash keeps names apart


def test_swept_keys_lead_the_job_directory_name_even_when_given_last(tmp_path):
    """The command line lists the swept key last, after long fixed overrides: it still comes first and survives the
    120-character cut."""
    from hydra.core.hydra_config import HydraConfig

    fixed = [f"+extra.key_{i}=value_{i}" for i in range(12)]
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    OmegaConf.save({"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                          "params": None},
                              "overrides": {"task": [*fixed, "method.lam=0,0.5"]}}}, sweep_dir / "multirun.yaml")
    cfg = compose("train", [*fixed, "method.lam=0.5"], output_dir=sweep_dir / "1")
    as_multirun_job(cfg, sweep_dir, sweep_dir / "1")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.num = 1
    HydraConfig.instance().set_config(cfg)
    name = sweep.job_dirname()
    assert name.startswith("1_method.lam=0.5,+extra.key_0=value_0") and len(name) == 2 + 120
    assert sweep.run_name().startswith("method.lam=0.5,")


def test_sweep_points_are_the_basic_sweepers_jobs_in_its_order():
    """The public-API expansion (report, the SIGTERM message) equals Hydra's own BasicSweeper job list."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = ["model=tiny", "method.lam=0,0.5,1", "data.poison_ratio=0.1,0.3", "seed=range(2)"]
    params = {"method.num_safety_tokens": "20,50"}
    multirun = OmegaConf.create({"hydra": {"sweeper": {"_target_": "x.BasicSweeper", "params": params},
                                           "overrides": {"task": task}}})
    (expected,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + task), None)
    assert sweep.sweep_points(multirun) == expected and len(expected) == 2 * 3 * 2 * 2
    glob = OmegaConf.merge(multirun, {"hydra": {"overrides": {"task": ["experiment=glob(paper_*)"]}}})
    assert sweep.sweep_points(glob) is None


def test_submitit_local_gives_each_point_its_trainers_devices(tmp_path):
    """null would set CUDA_VISIBLE_DEVICES="" in every point: no GPU at all."""
    cfg = compose("train", ["launcher=submitit_local", "trainer=ddp_cpu"], output_dir=tmp_path)
    assert OmegaConf.select(cfg, "hydra.launcher.gpus_per_node") == cfg.trainer.devices == 2


def test_submitit_local_gives_concurrent_gpu_points_disjoint_gpus(tmp_path, monkeypatch):
    """submitit gives every local point the GPUs 0..n-1. launcher=submitit_local runs GPU points in waves of as many as
    the visible GPUs hold, each point keeping its own trainer.devices of them; a point that needs more GPUs than are
    visible is refused before any starts; CPU points all start at once, their CUDA_VISIBLE_DEVICES left alone. (The
    submission and the point's run are Hydra's, stubbed here: they record the waves and the point's GPUs.)"""
    import os

    from hydra_plugins.pact_lightning_launcher.submitit_local import LocalLauncher
    from pact_lightning.errors import ConfigError

    # Hydra's launcher class as ours extends it (Hydra's plugin scan loads its plugin modules more than once)
    HydraLocalLauncher = LocalLauncher.__mro__[1]
    waves = []
    monkeypatch.setattr(HydraLocalLauncher, "launch", lambda self, overrides, first: waves.append(
        (list(overrides), first)) or [f"point {first + i}" for i in range(len(overrides))])
    monkeypatch.setattr(HydraLocalLauncher, "__call__", lambda self, *args: os.environ["CUDA_VISIBLE_DEVICES"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,4,5,6")  # the GPUs the sweep may use: 5, two points of 2 at a time
    points = [[f"seed={s}"] for s in range(3)]

    def launcher(trainer: list[str]):
        cfg = compose("train", ["launcher=submitit_local", *trainer], output_dir=tmp_path)
        instance = instantiate(cfg.hydra.launcher)
        assert isinstance(instance, LocalLauncher)  # (Hydra's own would submit real jobs here)
        instance.setup(hydra_context=None, task_function=None, config=cfg)
        return instance

    gpu_points = launcher(["trainer=ddp"])  # trainer.devices=2
    assert gpu_points.launch(points, initial_job_idx=0) == ["point 0", "point 1", "point 2"]
    assert waves == [(points[:2], 0), (points[2:], 2)]
    assert [gpu_points(p, "hydra.sweep.dir", i, str(i), {}) for i, p in enumerate(points)] == ["2,3", "4,5", "2,3"]

    waves.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,4,5,6")
    cpu_points = launcher(["trainer=ddp_cpu"])
    assert cpu_points.launch(points, initial_job_idx=0) == ["point 0", "point 1", "point 2"] and waves == [(points, 0)]
    assert cpu_points(points[1], "hydra.sweep.dir", 1, "1", {}) == "2,3,4,5,6"

    with pytest.raises(ConfigError, match="trainer.devices=8 GPU.*5 are visible.*lower trainer.devices to at most 5"):
        launcher(["trainer=ddp", "trainer.devices=8"]).launch(points, initial_job_idx=0)


def test_embedded_seeds_is_the_default_comparison_over_three_seeds(tmp_path):
    """`python -m pact_lightning.train experiment=embedded_seeds`: a multirun by itself, over seeds 1, 2, 3, of the
    embedded default unchanged (PACT with SFT as comparison)."""
    seeds = compose("train", ["experiment=embedded_seeds"], output_dir=tmp_path)
    default = compose("train", [], output_dir=tmp_path)
    assert str(seeds.hydra.mode) == "RunMode.MULTIRUN" and seeds.hydra.sweeper.params == {"seed": "1,2,3"}
    for key in ("method", "data", "optim", "model", "eval", "align", "compare_with", "safety"):
        assert OmegaConf.to_container(seeds[key]) == OmegaConf.to_container(default[key]), key
