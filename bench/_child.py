"""What every bench child that trains sets up first, as the train job does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def child_variant(variant_path: str | Path, threads: int) -> dict[str, Any]:
    """The variant a bench child trains (JSON), with torch's threads and seeds set as the
    train rule sets them (one thread by default: workflow/rules/train.smk)."""
    import torch

    from pipeline.train import seed_everything

    variant = json.loads(Path(variant_path).read_text())
    torch.set_num_threads(threads)
    seed_everything(0, variant["training"]["deterministic"])
    return variant
