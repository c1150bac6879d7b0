"""regrid rule: put one downloaded dataset on the experiment grid (Zarr)."""

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.logs import configure
from pipeline.regrid import regrid_dataset
from pipeline.sources import read_manifest

configure(snakemake.log[0])
regrid_dataset(
    read_manifest(snakemake.input.manifest),
    snakemake.params.dataset,
    snakemake.params.grid,
    snakemake.output.store,
    threads=snakemake.threads,
    time_step=snakemake.params.time_step,
)
