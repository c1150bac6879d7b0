"""download rule: fetch one dataset into results/data/raw/{dataset}/."""

from pathlib import Path

from pipeline.logs import configure
from pipeline.sources import fetch

configure(snakemake.log[0])
fetch(snakemake.wildcards.dataset, snakemake.params.dataset, Path(snakemake.output.manifest).parent)
