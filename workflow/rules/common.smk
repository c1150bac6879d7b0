# Helpers shared by the rules: result paths and config look-ups.
import shutil

from pipeline.config import experiment_datasets
from pipeline.tasks import gridded, time_step
from pipeline.tracking import tracking_uri

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


def prepare_grids(experiment):
    """The regridded stores an experiment's prepare reads: none for series, which skip
    the regrid stage and read the downloaded files."""
    exp = CFG["experiments"][experiment]
    return [grid_store(d) for d in experiment_datasets(exp)] if gridded(exp) else []


def grid_of(dataset):
    """The grid a dataset is regridded to (config checks that its experiments agree)."""
    for exp in CFG["experiments"].values():
        if dataset in experiment_datasets(exp):
            return exp["grid"]
    raise ValueError(f"dataset {dataset} is used by no experiment")


def time_step_of(dataset):
    """The strictest time axis a dataset's experiments need: monthly for a forecast."""
    steps = {
        time_step(e)
        for e in CFG["experiments"].values()
        if dataset in experiment_datasets(e)
    }
    return "monthly" if "monthly" in steps else None


def run_dirs(experiment):
    """One folder per (model variant, seed) of an experiment."""
    exp = CFG["experiments"][experiment]
    return [
        f"{RESULTS}/{experiment}/runs/{variant}/seed{seed}"
        for variant in exp["variants"]
        for seed in exp["seeds"]
    ]


def all_targets():
    return [f"{RESULTS}/{e}/summary/summary.csv" for e in EXPERIMENTS]


def train_processes(experiment, variant):
    """The processes a train job runs: training.processes under DDP, else 1."""
    training = CFG["experiments"][experiment]["variants"][variant]["training"]
    return training["processes"] if training["strategy"] == "ddp" else 1


def train_gpus(experiment, variant):
    """The GPUs a train job takes (one per process), so `--resources gpu=N` caps them."""
    device = CFG["experiments"][experiment]["variants"][variant]["training"]["device"]
    has_gpu = shutil.which("nvidia-smi") is not None
    uses_gpu = device == "cuda" or (device == "auto" and has_gpu)
    return train_processes(experiment, variant) if uses_gpu else 0


def train_mpi(experiment, variant):
    """'srun' for a DDP job: the SLURM executor then runs the job in the batch script,
    whose srun starts its processes (pipeline.distributed); unset for one process."""
    return "srun" if train_processes(experiment, variant) > 1 else None


def finished_message():
    """What a user reads when the run is done: where the results are, how to browse them."""
    lines = ["", "geodl-pipeline finished."]
    for e in EXPERIMENTS:
        lines.append(
            f"  {e}: summary   {RESULTS}/{e}/summary/ (summary.csv, best_forecasts.csv, figures/)"
        )
        lines.append(f"  {e}: per run   {RESULTS}/{e}/runs/<model>/seed<seed>/")
    lines.append(f"  MLflow store  {tracking_uri(CFG)}")
    lines.append(
        "  Browse runs:  make ui   (then open http://127.0.0.1:5000 and click 'Model training')"
    )
    lines.append("  HTML report:  make report   -> results/report.html")
    return "\n".join(lines)
