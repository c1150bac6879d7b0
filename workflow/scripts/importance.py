"""importance rule: single- and multi-pass permutation importance per lead."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)
import torch

from pipeline.logs import configure
from pipeline.runs import importance_job

configure(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
importance_job(
    prepared_path=snakemake.input.prepared,
    variant_name=snakemake.wildcards.model,
    variant=snakemake.params.variant,
    settings=snakemake.params.settings,
    seed=int(snakemake.wildcards.seed),
    model_path=snakemake.input.model,
    run_id_path=snakemake.input.run_id,
    tracking_uri=snakemake.params.uri,
    out_dir=Path(snakemake.output.table).parent,
)
