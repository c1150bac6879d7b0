"""train rule: one (experiment, model variant, seed) training job."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)
import torch

from pipeline.distributed import launch
from pipeline.gpu_slots import gpu_slot
from pipeline.logs import configure
from pipeline.runs import train_job

configure(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
job = {
    "prepared_path": snakemake.input.prepared,
    "experiment": snakemake.wildcards.experiment,
    "variant_name": snakemake.wildcards.model,
    "variant": snakemake.params.variant,
    "seed": int(snakemake.wildcards.seed),
    "run_hash": snakemake.params.run_hash,
    "experiment_ids": snakemake.input.mlflow,
    "tracking_uri": snakemake.params.uri,
    "out_dir": str(Path(snakemake.output.model).parent),
}
processes = snakemake.resources.tasks
with gpu_slot(snakemake.params.gpu_slots, count=processes):
    if processes > 1:
        launch(job, processes, snakemake.threads)
    else:
        train_job(**job)
