# Helpers shared by the rules: result paths and config look-ups.
from pipeline.config import experiment_datasets

RESULTS = CFG["results"]
EXPERIMENTS = list(CFG["experiments"])
DATASETS = list(CFG["datasets"])
PIPELINE_ENV = "../../envs/pipeline.yaml"


wildcard_constraints:
    dataset="|".join(DATASETS),
    experiment="|".join(EXPERIMENTS),
    model="[A-Za-z0-9_.+-]+",
    seed=r"\d+",


def raw_manifest(dataset):
    return f"{RESULTS}/data/raw/{dataset}/manifest.json"


def grid_store(dataset):
    return f"{RESULTS}/data/grid/{dataset}.zarr"


def prepared_store(experiment):
    return f"{RESULTS}/{experiment}/prepared.zarr"


def grid_of(dataset):
    """The grid a dataset is regridded to (config checks that its experiments agree)."""
    for exp in CFG["experiments"].values():
        if dataset in experiment_datasets(exp):
            return exp["grid"]
    raise ValueError(f"dataset {dataset} is used by no experiment")


def run_dirs(experiment):
    """One folder per (model variant, seed) of an experiment."""
    exp = CFG["experiments"][experiment]
    return [
        f"{RESULTS}/{experiment}/runs/{variant}/seed{seed}"
        for variant in exp["variants"]
        for seed in exp["seeds"]
    ]


def all_targets():
    return [f"{run}/importance.csv" for e in EXPERIMENTS for run in run_dirs(e)]
