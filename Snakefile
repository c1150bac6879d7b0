# geodl-pipeline: download -> regrid -> prepare -> train -> evaluate -> importance -> summarize.
# All logic lives in src/pipeline; rules call thin scripts in workflow/scripts.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Jobs (local, conda or SLURM) import the same checkout of the package.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from pipeline.config import resolve_config  # noqa: E402


configfile: "config/config.yaml"


CFG = resolve_config(config)  # clear errors naming the key, before any job runs
validate(config, "config/schema.yaml")  # Snakemake's own validation, filling defaults


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/regrid.smk"
include: "workflow/rules/prepare.smk"


rule all:
    input:
        all_targets(),
    default_target: True
