"""geodl-pipeline: reproducible deep-learning experiments for the Earth sciences."""

__version__ = "0.1.0"
