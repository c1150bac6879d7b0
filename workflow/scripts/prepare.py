"""prepare rule: anomalies, splits, normalisation and sample windows (Zarr)."""

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.logs import configure
from pipeline.prepare import prepare
from pipeline.sources import read_manifest

configure(snakemake.log[0])
prepare(
    snakemake.input.grids,
    [read_manifest(m) for m in snakemake.input.manifests],
    snakemake.params.experiment,
    snakemake.params.config_hash,
    snakemake.output.store,
    snakemake.params.variables,
)
