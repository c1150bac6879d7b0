"""mlflow_setup rule: create the tracking store and experiments once, before any job."""

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.io import write_json
from pipeline.logs import configure
from pipeline.tracking import setup_experiments

configure(snakemake.log[0])
ids = setup_experiments(
    snakemake.params.uri, snakemake.params.names, snakemake.params.artifact_root
)
write_json(ids, snakemake.output.ids)
