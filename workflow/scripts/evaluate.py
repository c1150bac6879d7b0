"""evaluate rule: test-set metrics against baselines and the oracle, with plots."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.logs import configure
from pipeline.runs import evaluate_job

configure(snakemake.log[0])
evaluate_job(
    prepared_path=snakemake.input.prepared,
    variant_name=snakemake.wildcards.model,
    variant=snakemake.params.variant,
    model_path=snakemake.input.model,
    run_id_path=snakemake.input.run_id,
    tracking_uri=snakemake.params.uri,
    out_dir=Path(snakemake.output.metrics).parent,
)
