"""summarize rule: tables and figures across variants, seeds and leads; parent MLflow run."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.logs import configure
from pipeline.summarize import summarize_job

configure(snakemake.log[0])
summarize_job(
    experiment=snakemake.wildcards.experiment,
    run_dirs=snakemake.params.run_dirs,
    prepared_path=snakemake.input.prepared,
    tracking_uri=snakemake.params.uri,
    experiment_ids=snakemake.input.mlflow,
    out_dir=Path(snakemake.output.table).parent,
)
