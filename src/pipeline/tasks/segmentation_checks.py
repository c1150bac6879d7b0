"""Config checks of the segmentation task: torch-free, so Snakemake runs them first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import ConfigError, check_losses, experiment_variables
from pipeline.models.specs import MAP_ARCHS

LOSSES = ("auto", "cross_entropy", "jaccard", "dice")

#: Snapshots: any steps in order, no duplicates (pipeline.datacheck.check_time).
TIME_STEP = None
#: Maps, regridded to the experiment's grid.
GRIDDED = True


def check(key: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """The label variable exists, classes are distinct, every network outputs maps, and
    the loss is a classification loss."""
    task = exp["task"]
    provided = experiment_variables(exp, config)
    if task["labels"] not in provided:
        raise ConfigError(
            f"{key}.task.labels",
            f"variable '{task['labels']}' is not provided by the dataset(s) (they provide: "
            f"{', '.join(sorted(provided))})",
        )
    if task["labels"] in task["inputs"]:
        raise ConfigError(f"{key}.task.inputs", f"holds the labels '{task['labels']}'")
    if len(set(task["classes"])) != len(task["classes"]):
        raise ConfigError(f"{key}.task.classes", "contains duplicates")
    for name, spec in exp["models"].items():
        if spec["arch"] not in MAP_ARCHS:
            raise ConfigError(
                f"{key}.models.{name}.arch",
                f"'{spec['arch']}' outputs one value per sample; segmentation needs a class "
                f"map per sample, from one of {', '.join(sorted(MAP_ARCHS))}",
            )
    check_losses(key, exp, LOSSES, f"is not a segmentation loss; use one of {', '.join(LOSSES)}")
    if exp["importance"].get("leads"):
        raise ConfigError(f"{key}.importance.leads", "is for forecasts; segmentation has none")
