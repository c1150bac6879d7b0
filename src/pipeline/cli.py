"""``python -m pipeline``: check a config, document it, re-log runs to a tracking store."""

from __future__ import annotations

import argparse
import sys

from pipeline.logs import configure


def _check(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, load_config
    from pipeline.datacheck import check_local_datasets
    from pipeline.tasks import time_step
    from pipeline.variables import DataError

    try:
        cfg = load_config(args.config)
        check_local_datasets(cfg, step_of=time_step)
    except (ConfigError, DataError) as err:
        print(err, file=sys.stderr)
        return 2
    for name, exp in cfg["experiments"].items():
        print(
            f"{name}: {len(exp['variants'])} variant(s) x {len(exp['seeds'])} seed(s): "
            + ", ".join(exp["variants"])
        )
    return 0


def _sync(args: argparse.Namespace) -> int:
    from pipeline.sync import find_run_dirs, sync_run
    from pipeline.tracking import read_state

    uri = args.tracking_uri
    runs = find_run_dirs(args.paths)
    if not runs:
        print(f"no run folders (with resolved_config.yaml) under {args.paths}", file=sys.stderr)
        return 1
    for run_dir in runs:
        if (
            args.only_offline
            and (run_dir / "mlflow_run_id").exists()
            and ((run_dir / "mlflow_run_id").read_text().strip() != "offline")
            and not read_state(run_dir).get("missing")
        ):
            continue
        print(f"{run_dir} -> {sync_run(run_dir, uri, args.artifact_root)}")
    return 0


def _config_doc(args: argparse.Namespace) -> int:
    from pipeline.config_doc import config_reference

    sys.stdout.write(config_reference())
    return 0


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a config and list its variants")
    check.add_argument("config")
    check.set_defaults(func=_check)
    doc = sub.add_parser("config-doc", help="print the config reference (config/README.md)")
    doc.set_defaults(func=_config_doc)
    sync = sub.add_parser("sync", help="re-log run folders from results/ to a tracking store")
    sync.add_argument("paths", nargs="+", help="run folders, or folders above them")
    sync.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db"),
    )
    sync.add_argument("--artifact-root", default="results/mlartifacts")
    sync.add_argument(
        "--only-offline",
        action="store_true",
        help="skip runs that are tracked completely (sync only offline and partial ones)",
    )
    sync.set_defaults(func=_sync)
    args = parser.parse_args(argv)
    configure()
    sys.exit(args.func(args))
