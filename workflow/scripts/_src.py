"""Put this checkout's ``src/`` first on sys.path, so every job (local, conda or SLURM)
runs the code of the workflow that launched it. It must move an entry that is already
there: Snakemake appends the launcher's sys.path to a job's, behind the venv's editable
install, which may point at another checkout."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
sys.path[:] = [SRC, *(entry for entry in sys.path if entry != SRC)]
