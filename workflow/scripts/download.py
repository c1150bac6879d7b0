"""download rule: fetch one dataset into results/data/raw/{dataset}/."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.logs import configure
from pipeline.sources import fetch

configure(snakemake.log[0])
fetch(snakemake.wildcards.dataset, snakemake.params.dataset, Path(snakemake.output.manifest).parent)
