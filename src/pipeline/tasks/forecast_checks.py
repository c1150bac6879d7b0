"""Config checks of the forecast task: torch-free, so Snakemake can run them before any job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import (
    ConfigError,
    check_losses,
    dataset_years,
    experiment_datasets,
    experiment_variables,
)

#: Monthly steps, every month present (pipeline.datacheck.check_time).
TIME_STEP = "monthly"
#: Maps, regridded to the experiment's grid.
GRIDDED = True


def check(key: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Leads, the target variable, and one sample window inside each split and dataset."""
    task = exp["task"]
    provided = experiment_variables(exp, config)
    if task["target_variable"] not in provided:
        raise ConfigError(
            f"{key}.task.target_variable",
            f"variable '{task['target_variable']}' is not provided by the dataset(s)",
        )
    for i, lead in enumerate(task["leads"]):
        if lead <= 0:
            raise ConfigError(
                f"{key}.task.leads[{i}]", f"leads must be positive months, got {lead}"
            )
    if len(set(task["leads"])) != len(task["leads"]):
        raise ConfigError(f"{key}.task.leads", "contains duplicates")
    for i, lead in enumerate(exp["importance"].get("leads", [])):
        if lead not in task["leads"]:
            raise ConfigError(
                f"{key}.importance.leads[{i}]",
                f"lead {lead} is not one of the task's leads {task['leads']}",
            )
    check_losses(
        key, exp, ("auto", "mse"), "is a classification loss; a forecast trains on mse (or auto)"
    )
    needed = task["history"] + max(task["leads"])
    for part in ("train", "val", "test"):
        start, end = exp["splits"][part]
        months = 12 * (end - start + 1)
        if months < needed:
            raise ConfigError(
                f"{key}.splits.{part}",
                f"{start}-{end} has {months} months, but one sample needs history + longest "
                f"lead = {task['history']} + {max(task['leads'])} = {needed} months inside it",
            )
        for ds_name in experiment_datasets(exp):
            years = dataset_years(config["datasets"][ds_name])
            if years and not (years[0] <= start and end <= years[1]):
                raise ConfigError(
                    f"{key}.splits.{part}",
                    f"years {start}-{end} lie outside dataset '{ds_name}', which covers "
                    f"{years[0]}-{years[1]}",
                )
