"""Command line: ``python -m pipeline <command>`` (also installed as ``geodl``)."""

from pipeline.cli import main

main()
