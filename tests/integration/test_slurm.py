"""The SLURM profile against a real slurmctld/slurmd on localhost (marker: slurm)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, require_tools
from tests.integration.slurm_cluster import SYSTEM_CONF, slurm_cluster
from tests.integration.workflow import RESULTS, snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_test_config_runs_as_slurm_jobs(tmp_path: Path) -> None:
    require_tools("munged", "slurmctld", "slurmd", "sbatch", "squeue")
    if SYSTEM_CONF.exists():
        pytest.skip(f"{SYSTEM_CONF} exists: this machine has its own SLURM; not touching it")
    with slurm_cluster(tmp_path / "slurm") as slurm_env:
        workdir = tmp_path / "work"
        workdir.mkdir()
        # the test config with two of its models: every rule, several train jobs at once
        enso = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["experiments"]["enso"]
        enso["models"] = {m: enso["models"][m] for m in ("cnn", "lstm")}
        # the LSTM also as a DDP job: 2 SLURM tasks, started by the job's own srun
        enso["sweep"] = {"lstm": {"strategy": ["single", "ddp"]}}
        result = snakemake(
            workdir,
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--seconds-between-status-checks",
            "2",
            "--slurm-keep-successful-logs",
            # a 2-CPU node without GPUs: train on the CPU, everything small
            "--set-resources",
            "train:gpu=0",
            "train:cpus_per_gpu=0",
            "train:mem_mb=800",
            "regrid:cpus_per_task=1",
            "regrid:mem_mb=800",
            "prepare:mem_mb=800",
            "--set-threads",
            "train=1",
            "regrid=1",
            "--default-resources",
            "mem_mb=800",
            "runtime=30",
            "slurm_partition=test",
            "cpus_per_task=1",
            env={
                **slurm_env,
                "GEODL_SLURM_PARTITION": "test",
                "GEODL_SLURM_ACCOUNT": "",
                "GEODL_GPU_MODEL": "",
            },
            timeout=1200,
            config=write_config(workdir, ["enso"], experiments={"enso": enso}),
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    jobs = re.findall(
        r"^\s*(\w+)\s+(\d+)\s*$", output.split("Job stats:")[1].split("\n\n")[0], re.MULTILINE
    )
    counts = {rule: int(n) for rule, n in jobs}
    local = counts.get("all", 0) + counts.get("mlflow_setup", 0)
    assert len(submitted) == counts["total"] - local, (counts, len(submitted))
    assert len(set(submitted)) == len(submitted)
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in logs} >= set(submitted)  # a log per SLURM job id
    runs = workdir / RESULTS / "enso" / "runs"
    for name in ("model.pt", "metrics.csv", "importance.csv"):
        assert len(list(runs.glob(f"*/seed*/{name}"))) == counts["train"], name
    assert (workdir / RESULTS / "enso" / "summary" / "summary.csv").exists()
    ddp_logs = list((workdir / RESULTS / "logs" / "train" / "enso").glob("lstm-strategyddp-*"))
    assert ddp_logs
    for log in ddp_logs:
        text = log.read_text()
        assert "launching 2 DDP processes: srun --ntasks=2" in text
        assert "rank 0 " in text and "epoch 2/2" in text
    client = MlflowClient(f"sqlite:///{workdir}/{RESULTS}/mlflow.db")
    experiment = client.get_experiment_by_name("enso")
    roles = [
        r.data.tags["pipeline.role"]
        for r in client.search_runs([experiment.experiment_id])
        if r.info.status == "FINISHED"
    ]
    assert roles.count("model") == counts["train"]
    assert roles.count("summary") == 1
