"""The kinds of study the pipeline runs, by ``task.kind`` (see tasks/base.py).

Each kind is a task module (the Task, with torch and plotting) and a torch-free checks
module that the config runs before any job; both load on first use, so checking a config
never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.tasks.base import Task

#: kind -> the module holding its ``TASK``; ``<module>_checks`` holds its ``check``.
TASKS: dict[str, str] = {
    "forecast": "pipeline.tasks.forecast",
    "segmentation": "pipeline.tasks.segmentation",
    "series": "pipeline.tasks.series",
}


def get_task(kind: str) -> Task:
    return importlib.import_module(TASKS[kind]).TASK


def check_task(key: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """The task's cross-field checks of ``experiments.<name>`` (``key``): ConfigError."""
    _checks(exp).check(key, exp, config)


def _checks(exp: Mapping[str, Any]) -> Any:
    return importlib.import_module(f"{TASKS[exp['task']['kind']]}_checks")


def time_step(exp: Mapping[str, Any]) -> str | None:
    """What the experiment's task needs of the time axis (pipeline.datacheck.check_time)."""
    return _checks(exp).TIME_STEP


def gridded(exp: Mapping[str, Any]) -> bool:
    """Whether the experiment's data are maps, regridded before prepare (series are not)."""
    return _checks(exp).GRIDDED


def prepared_task(prepared: Any) -> Task:
    """The task a prepared store was built for (prepare records ``task`` in its attrs)."""
    return get_task(prepared.attrs["task"])
