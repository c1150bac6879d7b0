# geodl-pipeline: download -> regrid -> prepare -> train -> evaluate -> importance -> summarize.
# All logic lives in src/pipeline; rules call thin scripts in workflow/scripts.
import json
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)  # jobs do the same through workflow/scripts/_src.py

from pipeline.config import check_config_files, resolve_config  # noqa: E402
from pipeline.datacheck import check_local_datasets  # noqa: E402
from pipeline.tasks import time_step  # noqa: E402

# The default experiment, unless --configfile/--config give another: Snakemake would
# otherwise deep-merge the two, leaking default models into a smaller config.
if not config:

    configfile: Path(workflow.basedir) / "config" / "config.yaml"


if "MLFLOW_TRACKING_URI" in os.environ:

    envvars:
        "MLFLOW_TRACKING_URI",  # a shared tracking server: forwarded to cluster jobs


# Snakemake's own YAML loader silently keeps the last of duplicated keys.
check_config_files(workflow.configfiles)
# Clear errors naming the key, before any job runs. Keys sorted: rules' params are compared
# by their text, so reordering or reformatting the YAML must not rerun anything.
CFG = json.loads(json.dumps(resolve_config(config), sort_keys=True))
# local files the task cannot use: header checks, before any job
check_local_datasets(CFG, step_of=time_step)
validate(
    config, Path(workflow.basedir) / "config" / "schema.yaml"
)  # Snakemake's own validation, filling defaults


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/regrid.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/summarize.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    print(finished_message())
