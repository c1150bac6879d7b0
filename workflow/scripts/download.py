"""download rule: fetch one dataset into results/data/raw/{dataset}/."""

from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ on sys.path)

from pipeline.config import resolve_config
from pipeline.logs import configure
from pipeline.sources import fetch

configure(snakemake.log[0])
# The real source (its URL may hold credentials) comes from the config, never from params,
# which Snakemake stores in .snakemake/metadata.
name = snakemake.wildcards.dataset
source = resolve_config(snakemake.config)["datasets"][name]
fetch(name, source, Path(snakemake.output.manifest).parent)
