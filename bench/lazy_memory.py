"""Training on prepared data larger than memory: peak RSS under a cgroup memory limit,
and the throughput of reading from the store against training from memory.

The store is the ENSO study's own (config/config.yaml: the synthetic archive through
the pipeline's fetch, regrid and prepare stages), then grown by appending copies of its
samples until it is N times the memory limit. Each measurement is a fresh child process
that trains the way the train job does (open the prepared store, the task's samples,
``training.data``, model, loss, pipeline.train's batches and epoch loop) for a fixed
number of optimiser steps, drawn by the epoch order from all over the store.

- **memory**: the child runs in a new memory cgroup (v2 ``memory.max`` or v1
  ``memory.limit_in_bytes``; needs root) with ``training.data: auto``, which must choose
  the store path by itself. Peak memory is the highest sum, sampled every 50 ms, of the
  child's and its DataLoader workers' PSS (not RSS: pages a forked worker shares with
  its parent count once), beside the child's own VmHWM.
- **throughput**: on a store that fits, no limit, ``data: memory`` (resident) against
  ``data: lazy``, same steps, same batches; loading the split into memory is not timed.

Usage (as root): python bench/lazy_memory.py [--limit-mb 2048] [--multiples 1 3 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _child import child_variant

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"
EXPERIMENT, MODEL = "enso", "cnn"


def measure(prepared_path: str, variant_path: str, steps: int, threads: int) -> dict:
    """Child process: ``steps`` optimiser steps of the CNN, as train_model sets them up."""
    import torch

    from pipeline.memory import available_memory
    from pipeline.prepare import open_prepared
    from pipeline.samples import StoreSamples
    from pipeline.tasks import prepared_task
    from pipeline.train import (
        Batches,
        load_samples,
        make_optimizer,
        train_epoch,
    )

    variant = child_variant(variant_path, threads)
    training = variant["training"]
    prepared = open_prepared(prepared_path)
    task = prepared_task(prepared)
    target = task.target(variant["model"])
    headroom = available_memory()
    start = time.perf_counter()
    (train,) = load_samples([task.samples(prepared, "train", target)], training["data"])
    load_seconds = time.perf_counter() - start
    lazy = isinstance(train, StoreSamples)
    buffer = int(training["shuffle_buffer_mb"] * 2**20)
    batches = Batches(
        train,
        training["batch_size"],
        torch.device("cpu"),
        resident=not lazy,
        num_workers=training["num_workers"] if lazy else 0,
        buffer_bytes=buffer,
    )
    groups, taken = [], 0
    for group in batches.shuffled(seed=0, epoch=1):  # whole groups, from all over the store
        groups.append(group[: steps * training["batch_size"] - taken])
        taken += len(groups[-1])
        if taken == steps * training["batch_size"]:
            break
    model = task.model(variant["model"], prepared)
    loss_fn = task.loss(training["loss"], prepared)
    start = time.perf_counter()
    loss = train_epoch(
        model,
        batches,
        groups,
        make_optimizer(model, training),
        loss_fn,
        None,
        training["grad_clip"],
        "bench",
    )
    seconds = time.perf_counter() - start
    return {
        "train_gb": round(train.nbytes / 1e9, 2),
        "path": "store" if lazy else "memory",
        "headroom_mb": round(headroom / 2**20),
        "samples": taken,
        "seconds": round(seconds, 2),
        "samples_per_s": round(taken / seconds, 1),
        "load_seconds": round(load_seconds, 2),
        "loss": round(loss, 5),
        "vmhwm_mb": round(_vmhwm_mb(), 1),
    }


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# ----------------------------------------------------------------------------- cgroup


def make_cgroup(limit_bytes: int) -> Path:
    """A new memory cgroup under this process's own, limited to ``limit_bytes``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            group = Path("/sys/fs/cgroup") / path.lstrip("/") / f"bench-lazy-{os.getpid()}"
            group.mkdir()
            (group / "memory.max").write_text(str(limit_bytes))
            (group / "memory.swap.max").write_text("0")
            return group
        if "memory" in controllers.split(","):
            group = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / f"bench-lazy-{os.getpid()}"
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
            return group
    raise RuntimeError("no memory cgroup to limit (needs cgroup v1 or v2, and root)")


def run_child(args: list[str], cgroup: Path | None) -> tuple[dict | None, float, str]:
    """Run a measurement child (in ``cgroup``); its result, peak RSS with its workers
    (MB), and how it ended."""

    def enter() -> None:  # in the child, before exec: join the cgroup
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=enter,
    )
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            family = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in family))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        ended = "killed (out of memory)" if proc.returncode == -9 else err.strip()[-300:]
        return None, peak / 2**20, ended
    return json.loads(out.strip().splitlines()[-1]), peak / 2**20, "ok"


# ----------------------------------------------------------------------------- stores


def setup(out: Path) -> tuple[Path, dict]:
    """The ENSO study's prepared store, through the pipeline's own stages."""
    from pipeline.config import load_config
    from pipeline.prepare import prepare
    from pipeline.regrid import regrid_dataset
    from pipeline.sources import fetch

    config = load_config(CONFIG)
    experiment = config["experiments"][EXPERIMENT]
    name = experiment["dataset"]
    manifest = fetch(name, config["datasets"][name], out / "raw")
    grid = out / "grid.zarr"
    regrid_dataset(manifest, config["datasets"][name], experiment["grid"], grid, threads=2)
    prepared = out / "prepared.zarr"
    prepare([grid], [manifest], experiment, "bench", prepared)
    return prepared, experiment["variants"][MODEL]


def grow(base: Path, out: Path, target_bytes: int) -> Path:
    """``base`` with its samples repeated until ``x`` passes ``target_bytes``, appended a
    copy at a time (never more than one copy in memory). Each copy is whole chunks, so
    every append starts a new chunk."""
    import xarray as xr

    ds = xr.open_zarr(base)
    chunk = ds["x"].encoding["chunks"][0]
    ds = ds.isel(sample=slice(0, ds.sizes["sample"] // chunk * chunk))
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("dtype", "units")}
    ds.chunk({"sample": chunk}).to_zarr(out, mode="w", consolidated=True, zarr_format=2)
    per_sample = ds[[v for v in ds.data_vars if "sample" in ds[v].dims]]
    copies = 1
    while copies * ds["x"].nbytes < target_bytes:
        per_sample.to_zarr(out, append_dim="sample", consolidated=True, zarr_format=2)
        copies += 1
    return out


class Bench:
    """The base store and variant, and how to run a child on a store."""

    def __init__(self, tmp: Path, args: argparse.Namespace):
        self.tmp, self.args = tmp, args
        self.base, self.variant = setup(tmp / "base")

    def child(
        self, store: Path, data: str, cgroup: Path | None, workers: int | None = None
    ) -> tuple[dict | None, float, str]:
        workers = self.args.workers if workers is None else workers
        training = {**self.variant["training"], "data": data, "num_workers": workers}
        path = self.tmp / f"variant-{data}-{workers}.json"
        path.write_text(json.dumps({**self.variant, "training": training}))
        steps, threads = str(self.args.steps), str(self.args.threads)
        args = ["--child", str(store), str(path), "--steps", steps, "--threads", threads]
        return run_child(args, cgroup)

    def limited(self, store: Path, data: str, limit: int) -> dict:
        cgroup = make_cgroup(limit)
        try:
            result, peak, ended = self.child(store, data, cgroup)
        finally:
            cgroup.rmdir()
        x_gb = round(_store_bytes(store) / 1e9, 2)
        return {
            "x_gb": x_gb,
            "data": data,
            **(result or {}),
            "peak_pss_mb": round(peak),
            "ended": ended,
        }


def memory_part(bench: Bench, limit: int, multiples: list[float]) -> None:
    """Stores of ``multiples`` x the limit, each trained on under it with ``data: auto``
    (which must choose the store) and with ``data: memory`` (which must not fit)."""
    import shutil

    for multiple in sorted(multiples):
        store = grow(bench.base, bench.tmp / f"x{multiple:g}.zarr", int(multiple * limit))
        for data in ("auto", "memory"):
            row = {"multiple": multiple, **bench.limited(store, data, limit)}
            print(json.dumps(row), flush=True)
        shutil.rmtree(store)  # 10x the limit is a lot of disk


def throughput_part(bench: Bench, size: int) -> None:
    """Resident against lazy on a store that fits, lazy read in the training process (0
    workers) and by DataLoader workers, interleaved, twice each."""
    fits = grow(bench.base, bench.tmp / "fits.zarr", size)
    print(f"throughput, no limit, a store of {_store_bytes(fits) / 1e9:.2f} GB (x)")
    speed: dict[str, list[float]] = {}
    runs = [("memory", 0), ("lazy", 0), ("lazy", bench.args.workers)] * 2
    for data, workers in runs:
        result, peak, ended = bench.child(fits, data, None, workers)
        if result is None:
            raise RuntimeError(ended)
        name = data if data == "memory" else f"lazy, {workers} workers"
        speed.setdefault(name, []).append(result["samples_per_s"])
        print(json.dumps({"run": name, "peak_pss_mb": round(peak), **result}), flush=True)
    best = {k: max(v) for k, v in speed.items()}
    for name, value in best.items():
        print(f"{name}: {value:.0f} samples/s (best of 2), {value / best['memory']:.3f} x memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=int, default=2048, help="the cgroup memory limit")
    parser.add_argument(
        "--multiples",
        type=float,
        nargs="+",
        default=[1, 3, 10],
        help="store sizes, in multiples of the limit",
    )
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the train rule's)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument("--only", choices=["memory", "throughput"], help="one of the two parts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.steps, args.threads)))
        return
    limit = args.limit_mb * 2**20
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        bench = Bench(Path(tmp), args)
        print(
            f"limit {args.limit_mb} MB; {args.steps} steps of "
            f"{bench.variant['training']['batch_size']}; {args.threads} torch thread(s), "
            f"{args.workers} DataLoader worker(s)"
        )
        if args.only != "throughput":
            memory_part(bench, limit, args.multiples)
        if args.only != "memory":
            throughput_part(bench, limit // 2)


def _store_bytes(store: Path) -> int:
    import xarray as xr

    return xr.open_zarr(store)["x"].nbytes


if __name__ == "__main__":
    main()
