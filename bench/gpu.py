"""The GPU figures in one command: training throughput by data path and precision, the
U-Net's model FLOPs utilisation, and batched permutation importance against a loop.

    python bench/gpu.py            # on a machine with a CUDA GPU, ~5 min on an H100
    python bench/gpu.py --quick    # a few steps of each: checks the code paths (CPU too)

Every figure is against a peer measured in the same run:
1. **Training samples/s** of the default ENSO CNN (3 x 2 x 23 x 72 samples) and the
   extremes U-Net (4 x 96 x 144 maps): pipeline.train's device-resident batches, its
   DataLoader path (host memory, pinned, workers), and a plain PyTorch loop over
   ``DataLoader(TensorDataset, shuffle=True, pin_memory=True)``; each in fp32 and bf16
   autocast. CUDA is synchronised around each timed epoch; a warm-up epoch comes first.
2. **U-Net MFU**: model FLOPs of one training step (torch.utils.flop_counter over forward
   and backward) x steps/s, over the GPU's dense bf16 peak (a table below, or
   ``--peak-tflops``).
3. **Batched importance**: pipeline.importance.permutation_importance, multi-pass, on the
   CNN, against a loop making one model call per (candidate, batch), the naive way; the
   same permutations, so the same scores.
Without CUDA every part runs on the CPU and says so: those are not GPU figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.importance import permutation, permutation_importance
from pipeline.losses import masked_mse
from pipeline.models.registry import Shapes, build_model
from pipeline.samples import ArraySamples
from pipeline.train import Batches, epoch_order, train_epoch

#: Dense bf16 peak TFLOP/s (vendor data sheets), by a substring of the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "V100": 125.0,  # fp16 tensor cores (no bf16)
}

MODELS = {
    "enso-cnn": (
        {"arch": "cnn", "filters": [8, 16], "kernel": 5, "pool": "max", "head": "gap"},
        Shapes(history=3, channels=2, lat=23, lon=72, n_out=5),
    ),
    "extremes-unet": (
        {"arch": "unet", "depth": 2, "base": 8, "padding": "periodic"},
        Shapes(history=1, channels=4, lat=96, lon=144, n_out=5),
    ),
}


def synthetic(shapes: Shapes, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the model's shape, and targets shaped like its output."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(
        (n, shapes.history, shapes.channels, shapes.lat, shapes.lon), generator=generator
    )
    return x, torch.randn(n, shapes.n_out, generator=generator)


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def pipeline_epoch(model, batches: Batches, optimizer, amp, epoch: int) -> None:
    """pipeline.train's epoch over its batches, in epoch ``epoch``'s order."""
    order = [epoch_order(len(batches.data), 0, epoch)]
    train_epoch(model, batches, order, optimizer, masked_mse, amp, 0.0, "bench")


def plain_epoch(model, loader, optimizer, device, amp, epoch: int) -> None:
    """The loop a user would write around a DataLoader (it shuffles by itself)."""
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp is not None):
            loss = masked_mse(model(xb), yb)
        loss.backward()
        optimizer.step()


def head_for(model: torch.nn.Module, shapes: Shapes) -> torch.nn.Module:
    """Map networks predict maps: average them to ``n_out`` values, so that one loss and
    target serve every model (the cost is the network's)."""
    with torch.no_grad():
        out = model(torch.zeros(1, shapes.history, shapes.channels, shapes.lat, shapes.lon))
    if out.dim() == 2:
        return model
    return torch.nn.Sequential(model, torch.nn.Flatten(1), torch.nn.LazyLinear(shapes.n_out))


def throughput(name: str, device: torch.device, samples: int, epochs: int, batch: int) -> list:
    spec, shapes = MODELS[name]
    x, y = synthetic(shapes, samples)
    rows = []
    for amp in (None, torch.bfloat16):
        for path in ("resident", "dataloader", "plain"):
            torch.manual_seed(0)
            model = head_for(build_model(spec, shapes), shapes).to(device)
            model(torch.zeros(2, *x.shape[1:], device=device))  # materialise lazy layers
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            if path == "plain":
                loader = torch.utils.data.DataLoader(
                    torch.utils.data.TensorDataset(x, y),
                    batch_size=batch,
                    shuffle=True,
                    pin_memory=device.type == "cuda",
                    num_workers=2,
                    persistent_workers=True,
                )

                epoch = functools.partial(plain_epoch, model, loader, optimizer, device, amp)
            else:
                batches = Batches(
                    ArraySamples(x, y), batch, device, resident=path == "resident", num_workers=2
                )
                epoch = functools.partial(pipeline_epoch, model, batches, optimizer, amp)

            epoch(0)  # warm-up: cuDNN autotuning, allocator, workers
            seconds = min(timed(device, functools.partial(epoch, e)) for e in range(1, epochs + 1))
            rows.append(
                {
                    "part": "throughput",
                    "model": name,
                    "path": path,
                    "precision": "bf16" if amp else "fp32",
                    "samples_per_s": samples / seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def unet_mfu(device: torch.device, steps: int, batch: int, peak_tflops: float | None) -> dict:
    spec, shapes = MODELS["extremes-unet"]
    model = head_for(build_model(spec, shapes), shapes).to(device)
    x, y = (t.to(device) for t in synthetic(shapes, batch))
    model(x[:2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16):
            loss = masked_mse(model(x), y)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    seconds = timed(device, lambda: [step() for _ in range(steps)]) / steps
    achieved = flops / seconds / 1e12
    peak = peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    row = {
        "part": "mfu",
        "model": "extremes-unet",
        "batch": batch,
        "gflop_per_step": flops / 1e9,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
    }
    print(json.dumps(row), flush=True)
    return row


def naive_importance(model, x: np.ndarray, y: np.ndarray, masks: np.ndarray, batch: int):
    """Multi-pass selection with one model call per (candidate, batch): the naive loop,
    the same permutations as pipeline.importance (seed 0, one repeat)."""
    device = next(model.parameters()).device
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    def loss_of(inputs: torch.Tensor) -> float:
        total = 0.0
        with torch.inference_mode():
            for start in range(0, len(inputs), batch):
                pred = model(inputs[start : start + batch]).double()
                total += float(((pred - yt[start : start + batch]) ** 2).mean(-1).sum())
        return total / len(inputs)

    base = loss_of(xt)
    frozen = torch.zeros(masks.shape[1:], dtype=torch.bool, device=device)
    chosen: list[int] = []
    for t in range(1, len(masks) + 1):
        perm = torch.as_tensor(permutation(0, t, 0, len(x)), device=device)
        scores = {}
        for k in (k for k in range(len(masks)) if k not in chosen):
            mask = frozen | torch.as_tensor(masks[k], device=device)
            scores[k] = loss_of(torch.where(mask, xt[perm], xt)) - base
        best = max(scores, key=scores.get)
        chosen.append(best)
        frozen |= torch.as_tensor(masks[best], device=device)
    return chosen


def importance(device: torch.device, samples: int, batch: int) -> dict:
    spec, shapes = MODELS["enso-cnn"]
    torch.manual_seed(0)
    model = build_model(spec, shapes).to(device).eval()
    x, y = (t.numpy() for t in synthetic(shapes, samples))
    names = [f"{v}@{lag}" for lag in (-2, -1, 0) for v in ("sst", "hc")]
    masks = np.zeros((6, 3, 2, 1, 1), dtype=bool)
    for i in range(6):
        masks[i, i // 2, i % 2] = True
    groups = dict(zip(names, masks, strict=True))
    batched = timed(
        device,
        lambda: permutation_importance(
            model, x, y, groups, methods=("multi",), repeats=1, bootstrap=0, batch_size=batch
        ),
    )
    naive = timed(device, lambda: naive_importance(model, x, y, masks, batch))
    row = {
        "part": "importance",
        "model": "enso-cnn",
        "samples": samples,
        "groups": len(names),
        "batched_s": batched,
        "per_candidate_loop_s": naive,
        "speedup": naive / batched,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: check the paths")
    parser.add_argument("--parts", nargs="+", default=["throughput", "mfu", "importance"])
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if device.type != "cuda":
        print(
            "No CUDA device: running on the CPU to check the code paths. These are NOT GPU figures."
        )
        torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device: {where}; torch {torch.__version__}")
    quick = args.quick or device.type != "cuda"
    samples, epochs = (256, 1) if quick else (8192, 3)
    rows = []
    if "throughput" in args.parts:
        for name in MODELS:
            rows += throughput(name, device, samples if "cnn" in name else samples // 4, epochs, 64)
    if "mfu" in args.parts:
        rows.append(unet_mfu(device, 3 if quick else 50, 8 if quick else 64, args.peak_tflops))
    if "importance" in args.parts:
        rows.append(importance(device, 128 if quick else 4096, 256))
    print(f"\n## GPU figures: {where}\n")
    print("| model | path | fp32 samples/s | bf16 samples/s |\n|---|---|---|---|")
    for name in MODELS:
        for path in ("resident", "dataloader", "plain"):
            rate = {
                r["precision"]: r["samples_per_s"]
                for r in rows
                if r["part"] == "throughput" and r["model"] == name and r["path"] == path
            }
            if rate:
                print(f"| {name} | {path} | {rate['fp32']:.0f} | {rate['bf16']:.0f} |")
    for r in rows:
        if r["part"] == "mfu":
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] else "n/a (pass --peak-tflops)"
            print(
                f"\nU-Net, batch {r['batch']}: {r['gflop_per_step']:.1f} GFLOP a step, "
                f"{r['achieved_tflops']:.2f} TFLOP/s achieved, MFU {mfu}"
            )
        if r["part"] == "importance":
            print(
                f"\nImportance, ENSO CNN, {r['samples']} samples, {r['groups']} groups, "
                f"multi-pass: batched {r['batched_s']:.2f} s, per-candidate loop "
                f"{r['per_candidate_loop_s']:.2f} s: {r['speedup']:.1f}x"
            )


if __name__ == "__main__":
    main()
