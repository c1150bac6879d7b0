"""Config checks of the series task: torch-free, so Snakemake runs them first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import ConfigError, check_losses, experiment_variables
from pipeline.models.specs import SERIES_ARCHS

LOSSES = ("auto", "mse", "nse")

#: Series count history and leads in their own step, read from the data (any step).
TIME_STEP = None
#: Series skip the regrid stage: prepare reads the downloaded files.
GRIDDED = False


def check(key: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """The dataset provides the inputs, statics and target; the target is no input of its
    own forecast; every network reads sequences; the loss is a regression loss; an MLP's
    lags fit in the history."""
    task = exp["task"]
    provided = experiment_variables(exp, config)
    for field in ("inputs", "statics"):
        for i, name in enumerate(task[field]):
            if name not in provided:
                raise ConfigError(
                    f"{key}.task.{field}[{i}]",
                    f"variable '{name}' is not provided by the dataset(s) (they provide: "
                    f"{', '.join(sorted(provided))})",
                )
    if task["target"] not in provided:
        raise ConfigError(f"{key}.task.target", f"variable '{task['target']}' is not provided")
    if task["target"] in task["inputs"] and 0 in task["leads"]:
        raise ConfigError(
            f"{key}.task.leads",
            f"lead 0 with the target '{task['target']}' among task.inputs: a window's last "
            "step would hold the value to forecast; use leads of 1 or more",
        )
    both = sorted(set(task["inputs"]) & set(task["statics"]))
    if both:
        raise ConfigError(f"{key}.task.statics", f"{', '.join(both)} also in task.inputs")
    for name, spec in exp["models"].items():
        if spec["arch"] not in SERIES_ARCHS:
            raise ConfigError(
                f"{key}.models.{name}.arch",
                f"'{spec['arch']}' reads maps; a series study needs a sequence network, one "
                f"of {', '.join(sorted(SERIES_ARCHS))}",
            )
    check_losses(key, exp, LOSSES, f"is not a series loss; use one of {', '.join(LOSSES)}")
    for name, variant in exp["variants"].items():
        lags = variant["model"].get("lags", 0)
        if lags > task["history"]:
            swept = "lags" in exp.get("sweep", {}).get(variant["base"], {})
            where = "sweep" if swept else "models"
            raise ConfigError(
                f"{key}.{where}.{variant['base']}.lags",
                f"{lags} lags (variant {name}) exceed task.history ({task['history']})",
            )
