"""The task interface (tasks/base.py): every registered kind implements all of it, and
the forecast task's methods fit together the way train, evaluate and importance call them."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.models.specs import ARCH_OPTIONS
from pipeline.prepare import open_prepared
from pipeline.samples import split_indices
from pipeline.scores import ALL, ROLES, SCORE_COLUMNS
from pipeline.tasks import TASKS, get_task, prepared_task
from pipeline.tasks.base import ImportanceTarget, Task
from pipeline.tasks.forecast import MapForecaster, predict_index
from tests.conftest import REPO


@pytest.fixture(scope="module")
def prepared(tiny_prepared: Path) -> xr.Dataset:
    return open_prepared(tiny_prepared).load()


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_every_task_implements_the_interface(kind: str) -> None:
    task = get_task(kind)
    assert isinstance(task, Task) and task.name == kind
    assert not inspect.isabstract(type(task)), type(task).__abstractmethods__
    assert isinstance(task.dim, str) and isinstance(task.headline, str)
    checks = importlib.import_module(f"{TASKS[kind]}_checks")
    assert callable(checks.check)


def test_checking_a_config_never_imports_torch() -> None:
    """Snakemake validates the config before any job: that must not cost a torch import."""
    code = (
        "import sys; from pipeline.config import load_config; "
        f"load_config({str(REPO / 'config' / 'test.yaml')!r}); "
        "import pipeline.tracking; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("arch", sorted(ARCH_OPTIONS))
def test_the_forecast_head_fits_the_training_target(prepared: xr.Dataset, arch: str) -> None:
    """What train_model does: the task's network, its target and its loss agree in shape."""
    task = prepared_task(prepared)
    torch.manual_seed(0)
    model = task.model({"arch": arch}, prepared)
    target = task.target({"arch": arch})
    x = torch.as_tensor(prepared["x"].values[:3])
    y = torch.as_tensor(prepared[target].values[:3])
    out = model(x)
    assert out.shape == y.shape
    loss = task.loss("auto", prepared)(out, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert predict_index(model, x).shape == (3, prepared.sizes["lead"])


@pytest.mark.parametrize("arch", ["cnn", "unet"])
def test_forecast_task_from_network_to_scores(prepared: xr.Dataset, arch: str) -> None:
    """evaluate and importance: predict, baselines, score, predictions.nc, importance targets."""
    task = get_task("forecast")
    torch.manual_seed(0)
    model = task.model({"arch": arch}, prepared).eval()
    assert isinstance(model, MapForecaster) == (arch == "unet")
    test = split_indices(prepared)
    assert (prepared["split"].values[test] == "test").all()
    outputs = task.predict(model, prepared)
    n_test, n_leads = len(test), prepared.sizes["lead"]
    assert outputs["forecast"].shape == (n_test, n_leads)
    assert ("maps" in outputs) == (arch == "unet")

    baselines = task.baselines(prepared)
    roles = {n: "ceiling" if n in task.ceilings else "baseline" for n in baselines}
    roles[arch] = "model"
    scores = task.score({arch: outputs["forecast"], **baselines}, roles, baselines, prepared)
    assert list(scores.columns) == SCORE_COLUMNS and set(scores["role"]) <= set(ROLES)
    assert set(scores["dim"]) == {task.dim}
    mine = scores[scores["forecast"] == arch]
    assert set(mine["group"]) == {"1", "6", ALL}
    assert {task.headline, *task.lower_is_better} <= set(mine["metric"])
    assert set(scores[scores["role"] == "ceiling"]["forecast"]) == {"oracle"}

    ds = task.predictions(prepared, outputs, baselines)
    np.testing.assert_allclose(task.forecast_from(ds), outputs["forecast"], rtol=1e-6)

    targets = list(task.importance_targets(model, prepared, {"leads": [6]}))
    assert [t.groups for t in targets] == [["6"]]
    (target,) = targets
    assert isinstance(target, ImportanceTarget) and target.loss is None  # squared error
    with torch.no_grad():
        one_lead = target.predict(torch.as_tensor(prepared["x"].values[test]))
    np.testing.assert_allclose(one_lead.numpy()[:, 0], outputs["forecast"][:, 1], rtol=1e-5)
    np.testing.assert_array_equal(target.y, prepared["y"].values[test][:, 1:2])
    every = [t.groups for t in task.importance_targets(model, prepared, {})]
    assert every == [["1"], ["6"]]  # importance.leads unset: every lead, one at a time


def test_group_labels_read_as_leads() -> None:
    task = get_task("forecast")
    assert task.group_label("1") == "lead 1 month"
    assert task.group_label("12") == "lead 12 months"


def test_the_threshold_detector_fits_on_every_train_map_that_fits_its_budget() -> None:
    from pipeline.tasks.segmentation import DETECTOR_FIT_BYTES, detector_train_samples

    def splits(n_lat: int, n_lon: int) -> xr.Dataset:
        split = np.array(["train"] * 300 + ["val"] * 50 + ["train"] * 100)
        return xr.Dataset(
            {"split": ("sample", split)}, coords={"lat": np.arange(n_lat), "lon": np.arange(n_lon)}
        )

    coarse = detector_train_samples(splits(36, 72))  # 5 degrees: all 400 train maps
    assert coarse.tolist() == [*range(300), *range(350, 450)]
    fine = detector_train_samples(splits(720, 1440))  # 0.25 degrees: 32, evenly spaced
    assert len(fine) == DETECTOR_FIT_BYTES // (4 * 720 * 1440 * 4) == 32
    assert fine[0] == 0 and fine[-1] == 449 and set(fine) <= set(coarse.tolist())
