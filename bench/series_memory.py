"""Peak memory of series training: windows cut on the fly, vs the number of basins.

The series task stores each basin's series once and cuts its windows when a batch is
drawn (pipeline.samples.Windows), so training memory should follow the length of the
series, not the number of windows. This bench prepares the synthetic basins of
config/experiments/runoff.yaml for each basin count (the pipeline's own fetch and
prepare stages), then trains its LSTM for a fixed number of optimiser steps in a fresh
subprocess, the way the train job does (open the prepared store, the task's samples,
model and loss, pipeline.train's batches and epoch loop). Peak RSS is that process's
VmHWM; ``materialised`` is what a (windows x history x features) float32 array of the
training windows would take. Usage: python bench/series_memory.py [--basins 40 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _child import child_variant

CONFIG = Path(__file__).resolve().parents[1] / "config" / "experiments" / "runoff.yaml"
EXPERIMENT, DATASET, MODEL = "runoff", "basins_synth", "lstm"


def _status_mb(key: str) -> float:
    """A /proc/self/status memory field in MB (VmRSS: now; VmHWM: this process's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def measure(prepared_path: str, variant_path: str, steps: int, threads: int) -> dict:
    """Child process: load the prepared store, then ``steps`` optimiser steps of training."""

    from pipeline.prepare import open_prepared
    from pipeline.tasks import prepared_task
    from pipeline.train import (
        Batches,
        epoch_order,
        fits_on_device,
        make_optimizer,
        resolve_amp,
        resolve_device,
        train_epoch,
    )

    variant = child_variant(variant_path, threads)
    training = variant["training"]
    device = resolve_device(training["device"])

    start = time.perf_counter()
    prepared = open_prepared(prepared_path).load()
    load_seconds = time.perf_counter() - start
    task = prepared_task(prepared)
    model = task.model(variant["model"], prepared).to(device)
    target = task.target(variant["model"])
    train = task.samples(prepared, "train", target)
    val = task.samples(prepared, "val", target)
    resident = fits_on_device(train.nbytes + val.nbytes, device)
    batches = Batches(train, training["batch_size"], device, resident, training["num_workers"])
    loaded_mb, loaded_peak_mb = _status_mb("VmRSS"), _status_mb("VmHWM")

    order = epoch_order(len(train), 0, 1)[: steps * training["batch_size"]]
    if len(order) < steps * training["batch_size"]:
        raise ValueError(f"{len(train)} training windows are fewer than {steps} batches")
    start = time.perf_counter()
    loss = train_epoch(
        model,
        batches,
        [order],
        make_optimizer(model, training),
        task.loss(training["loss"], prepared),
        resolve_amp(training["amp"], device),
        training["grad_clip"],
        "bench",
    )
    seconds = time.perf_counter() - start
    width = prepared.sizes["feature"] + prepared.sizes["static"]
    return {
        "basins": prepared.sizes["entity"],
        "train_windows": len(train),
        "windows_mb": round(train.nbytes / 1e6, 1),
        "materialised_mb": round(len(train) * train.history * width * 4 / 1e6, 1),
        "loaded_rss_mb": round(loaded_mb, 1),
        "loaded_peak_mb": round(loaded_peak_mb, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "load_seconds": round(load_seconds, 2),
        "steps": steps,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 2),
        "train_loss": round(loss, 4),
        "device": str(device),
    }


def setup(n_basins: int, out: Path) -> tuple[Path, Path]:
    """Fetch and prepare ``n_basins`` synthetic basins as the pipeline's stages do; write
    the LSTM variant beside the store. Returns (prepared store, variant JSON)."""
    from pipeline.config import load_config
    from pipeline.prepare import prepare
    from pipeline.sources import fetch

    config = load_config(CONFIG)
    dataset = config["datasets"][DATASET]
    dataset = {**dataset, "source": {**dataset["source"], "n_basins": n_basins}}
    manifest = fetch(DATASET, dataset, out / "raw")
    experiment = config["experiments"][EXPERIMENT]
    prepared = out / "prepared.zarr"
    prepare([], [manifest], experiment, "bench", prepared)
    variant = out / "variant.json"
    variant.write_text(json.dumps(experiment["variants"][MODEL]))
    return prepared, variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--basins", type=int, nargs="+", default=[40, 400])
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps per size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the child")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.steps, args.threads)))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_basins in args.basins:
            start = time.perf_counter()
            prepared, variant = setup(n_basins, Path(tmp) / f"basins{n_basins}")
            setup_seconds = time.perf_counter() - start
            child = ["--child", str(prepared), str(variant), "--steps", str(args.steps)]
            result = subprocess.run(
                [sys.executable, __file__, *child, "--threads", str(args.threads)],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["setup_seconds"] = round(setup_seconds, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        "\n| basins | train windows | training Windows (MB) | materialised windows (MB) "
        "| RSS after loading (MB) | peak RSS (MB) | steps/s |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['basins']} | {r['train_windows']} | {r['windows_mb']} | "
            f"{r['materialised_mb']} | {r['loaded_rss_mb']} | {r['peak_rss_mb']} | "
            f"{r['steps_per_s']} |"
        )


if __name__ == "__main__":
    main()
