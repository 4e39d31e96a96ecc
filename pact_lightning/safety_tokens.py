"""``python -m pact_lightning.safety_tokens``: select the safety tokens of the aligned model (docs/method.md §2).

Writes the artifact (cached by its identity, reused afterwards) and, next to it, the table and the bar chart of the set
S that ``method.num_safety_tokens`` picks; prints the table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pact_lightning.app import CONFIG_PATH, task_wrapper
from pact_lightning.build import aligned_model_config
from pact_lightning.safety.selection import ensure_artifact, format_table, report
from pact_lightning.utils.io import atomic_path


@task_wrapper
def select(cfg: DictConfig) -> Path:
    model_cfg = aligned_model_config(cfg)
    k = int(cfg.method.num_safety_tokens)
    path = ensure_artifact(cfg.safety, model_cfg, cfg.paths.cache_dir, k, log_table=False)  # printed below
    tokens, png = report(path, k)
    print(f"Safety tokens of {model_cfg.name} (the top k={k} of the artifact's candidates):\n{format_table(tokens)}\n"
          f"artifact: {path}\nchart:    {png}")
    if cfg.out:
        with atomic_path(Path(cfg.out)) as tmp:
            shutil.copyfile(path, tmp)
        print(f"copied to: {cfg.out}")
        return Path(cfg.out)
    return path


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="safety_tokens")
def main(cfg: DictConfig) -> None:
    select(cfg)


if __name__ == "__main__":
    main()
