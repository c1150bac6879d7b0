"""Put this checkout's ``src/`` first on sys.path, so every job (local, conda or SLURM)
imports the same ``pipeline`` code as the Snakefile, installed or not."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
