"""Training-loop overhead: pipeline.train.train_epoch against a bare PyTorch loop.

Both train the same network on the same tensors in the same batch order (the default
ENSO experiment's shapes: 946 samples of 3 months x 2 channels x 23 x 72, batch 64,
Adam, gradient clipping at 1.0), in one process with 1 torch thread, epochs of the two
interleaved so that both see the same machine. The bare loop is what a user would write:
index the tensors, forward, loss, backward, clip, step. Reported: samples/s of each, their
ratio, and whether both end with the same weights (they should: same arithmetic).
Usage: python bench/train_loop.py [--models cnn unet] [--epochs 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

from pipeline.losses import masked_mse
from pipeline.models.registry import Shapes, build_model
from pipeline.samples import ArraySamples
from pipeline.train import Batches, epoch_order, train_epoch

#: Uniform valid-area weights: the LSTM reads area means of each channel.
WEIGHTS = torch.full((2, 23, 72), 1 / (23 * 72))
SHAPES = Shapes(history=3, channels=2, lat=23, lon=72, n_out=5, channel_weights=WEIGHTS)
N_SAMPLES, BATCH, LR, CLIP = 946, 64, 2e-3, 1.0
#: The default config's ENSO networks (config/config.yaml).
SPECS = {
    "cnn": {"arch": "cnn", "filters": [8, 16], "kernel": 5, "pool": "max", "head": "gap"},
    "resnet": {"arch": "resnet", "width": 8, "blocks": 2, "padding": "periodic"},
    "lstm": {"arch": "lstm", "hidden": 32, "layers": 1},
}


def bare_epoch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, opt
) -> None:
    model.train()
    for idx in order.split(BATCH):
        opt.zero_grad(set_to_none=True)
        loss = masked_mse(model(x[idx]), y[idx])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()


def pipeline_epoch(model: nn.Module, batches: Batches, order: torch.Tensor, opt) -> None:
    train_epoch(model, batches, [order], opt, masked_mse, None, CLIP, "bench")


def measure(name: str, epochs: int) -> dict:
    torch.manual_seed(0)
    shape = (N_SAMPLES, SHAPES.history, SHAPES.channels, SHAPES.lat, SHAPES.lon)
    x, y = torch.randn(shape), torch.randn(N_SAMPLES, SHAPES.n_out)
    first = build_model(SPECS[name], SHAPES)
    models = {"pipeline": first, "bare": copy.deepcopy(first)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=LR) for k, m in models.items()}
    batches = Batches(ArraySamples(x=x, y=y), BATCH, torch.device("cpu"), resident=True)
    seconds: dict[str, list[float]] = {"pipeline": [], "bare": []}
    for epoch in range(epochs):
        order = epoch_order(N_SAMPLES, 0, epoch)
        for kind in ("pipeline", "bare") if epoch % 2 == 0 else ("bare", "pipeline"):
            start = time.perf_counter()
            if kind == "pipeline":
                pipeline_epoch(models[kind], batches, order, opts[kind])
            else:
                bare_epoch(models[kind], x, y, order, opts[kind])
            seconds[kind].append(time.perf_counter() - start)
    rate = {k: N_SAMPLES / statistics.median(v) for k, v in seconds.items()}
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            models["pipeline"].state_dict().values(),
            models["bare"].state_dict().values(),
            strict=True,
        )
    )
    return {
        "model": name,
        "pipeline_samples_per_s": round(rate["pipeline"], 1),
        "bare_samples_per_s": round(rate["bare"], 1),
        "ratio": round(rate["pipeline"] / rate["bare"], 3),
        "same_weights": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--epochs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(name, args.epochs) for name in args.models]
    for row in rows:
        print(json.dumps(row))
    print("\n| model | pipeline samples/s | bare loop samples/s | ratio | same weights |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['pipeline_samples_per_s']} | {r['bare_samples_per_s']} "
            f"| {r['ratio']} | {r['same_weights']} |"
        )


if __name__ == "__main__":
    main()
