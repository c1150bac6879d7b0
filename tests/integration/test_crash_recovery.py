"""After a kill -9, the command users are told to run (`make run`) just works."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.workflow import RESULTS, copy_checkout

pytestmark = pytest.mark.slow


CONFIG = "config/crash.yaml"


def make_run() -> list[str]:
    venv = REPO / ".venv"  # shared, and never reinstalled (-o) from the copy
    stamp = venv / ".installed"
    return ["make", "-o", str(stamp), "run", f"CONFIG={CONFIG}", "CORES=2", f"VENV={venv}"]


def test_make_run_recovers_from_a_killed_run(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path / "study")
    # the test config's ENSO study with one model: the whole DAG, in a fraction of the time
    config = yaml.safe_load((checkout / "config" / "test.yaml").read_text())
    enso = config["experiments"]["enso"]
    enso["models"] = {"cnn": enso["models"]["cnn"]}
    config["experiments"] = {"enso": enso}
    config["datasets"] = {"enso_synth": config["datasets"]["enso_synth"]}
    (checkout / CONFIG).write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    first = subprocess.Popen(
        make_run(),
        cwd=checkout,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    locks = checkout / ".snakemake" / "locks"
    started = checkout / RESULTS / "data" / "raw"
    deadline = time.time() + 120
    while not (started.exists() and any(locks.glob("*"))) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert any(locks.glob("*")), "the crash should leave Snakemake's lock behind"

    again = subprocess.run(
        make_run(), cwd=checkout, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "unlocking" in again.stderr
    assert (checkout / RESULTS / "enso" / "summary" / "summary.csv").exists()
    assert not any(locks.glob("*"))
