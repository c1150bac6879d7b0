"""Load, validate and resolve the pipeline configuration.

The JSON schema (config/schema.yaml) checks types and fills defaults; this module adds
the cross-field checks a schema cannot express (splits, datasets, variables), expands
model sweeps into named variants, and hashes configs so runs can be traced and resumed.
Every failure raises :class:`ConfigError` naming the offending key, before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.models.specs import complete_spec

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

#: Variables each synthetic generator writes (the truth sidecar is not an input).
GENERATOR_VARIABLES = {"enso": ("sst", "heat_content")}

#: Keys of a variant spec that belong to the training section rather than the model.
TRAINING_KEYS = frozenset(
    {
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "optimizer",
        "scheduler",
        "grad_clip",
        "patience",
        "amp",
        "device",
        "deterministic",
        "gpu_resident",
        "num_workers",
    }
)

#: Short names used in variant names, e.g. ``cnn-k5-lr0.001``.
ABBREVIATIONS = {
    "kernel": "k",
    "filters": "f",
    "hidden": "h",
    "layers": "l",
    "depth": "d",
    "base": "b",
    "width": "w",
    "blocks": "nb",
    "dropout": "do",
    "batch_size": "bs",
    "weight_decay": "wd",
    "padding": "pad",
    "pool": "pool",
    "head": "head",
}


class ConfigError(ValueError):
    """A configuration mistake; ``key`` is the dotted path of the offending entry."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config error at '{key}': {message}")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class: type) -> type:
    """A validator that fills ``default`` values while it validates (as Snakemake's does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _dotted(path: Iterator[Any]) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _schema_error(errors: list[jsonschema.ValidationError]) -> ConfigError:
    # best_match descends into oneOf/anyOf to the error a person can act on.
    best = jsonschema.exceptions.best_match(errors)
    key = _dotted(best.absolute_path)
    if best.validator == "required":
        missing = best.message.split("'")[1] if "'" in best.message else best.message
        return ConfigError(f"{key}.{missing}" if key != "<root>" else missing, "is required")
    if best.validator == "additionalProperties":
        return ConfigError(key, f"{best.message} (check the spelling against config/README.md)")
    return ConfigError(key, best.message)


def validate_schema(config: dict[str, Any], schema: Mapping[str, Any] | None = None) -> None:
    """Validate ``config`` in place against the schema, filling defaults."""
    schema = schema if schema is not None else load_schema()
    validator_class = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = list(validator_class(schema).iter_errors(config))
    if errors:
        raise _schema_error(errors)


def experiment_datasets(exp: Mapping[str, Any]) -> list[str]:
    """The dataset names an experiment reads, as a list."""
    names = exp["dataset"]
    return [names] if isinstance(names, str) else list(names)


def dataset_variables(name: str, dataset: Mapping[str, Any]) -> tuple[str, ...]:
    """The variables a dataset provides after download and derivation."""
    if dataset.get("variables"):
        return tuple(dataset["variables"])
    source = dataset["source"]
    if source["kind"] == "synthetic":
        return GENERATOR_VARIABLES[source["generator"]]
    raise ConfigError(
        f"datasets.{name}.variables",
        f"is required for source kind '{source['kind']}': list the variables it provides",
    )


def _check_splits(key: str, splits: Mapping[str, list[int]]) -> None:
    spans = []
    for part in ("train", "val", "test"):
        start, end = splits[part]
        if start > end:
            raise ConfigError(f"{key}.{part}", f"starts after it ends ({start} > {end})")
        spans.append((part, start, end))
    for (a, a0, a1), (b, b0, b1) in itertools.combinations(spans, 2):
        if a0 <= b1 and b0 <= a1:
            raise ConfigError(f"{key}.{b}", f"years {b0}-{b1} overlap the {a} years {a0}-{a1}")


def _check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    source = dataset["source"]
    if source["kind"] == "synthetic":
        years = source.get("years", 150)
        if years < 12:
            raise ConfigError(f"datasets.{name}.source.years", "needs at least 12 years")
    dataset_variables(name, dataset)


def _check_experiment(name: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    key = f"experiments.{name}"
    provided: set[str] = set()
    for ds_name in experiment_datasets(exp):
        if ds_name not in config["datasets"]:
            known = ", ".join(sorted(config["datasets"]))
            raise ConfigError(f"{key}.dataset", f"unknown dataset '{ds_name}' (known: {known})")
        provided.update(dataset_variables(ds_name, config["datasets"][ds_name]))
    task = exp["task"]
    for i, var in enumerate(task["inputs"]):
        if var not in provided:
            raise ConfigError(
                f"{key}.task.inputs[{i}]",
                f"variable '{var}' is not provided by the dataset(s) (they provide: "
                f"{', '.join(sorted(provided))})",
            )
    if task["target_variable"] not in provided:
        raise ConfigError(
            f"{key}.task.target_variable",
            f"variable '{task['target_variable']}' is not provided by the dataset(s)",
        )
    for i, lead in enumerate(task["leads"]):
        if lead <= 0:
            raise ConfigError(
                f"{key}.task.leads[{i}]", f"leads must be positive months, got {lead}"
            )
    if len(set(task["leads"])) != len(task["leads"]):
        raise ConfigError(f"{key}.task.leads", "contains duplicates")
    _check_splits(f"{key}.splits", exp["splits"])
    grid = exp["grid"]
    for axis in ("lat", "lon"):
        lo, hi = grid[axis]
        if lo >= hi:
            raise ConfigError(
                f"{key}.grid.{axis}", f"must be [min, max] with min < max, got {lo, hi}"
            )
        cells = (hi - lo) / grid["resolution"]
        if abs(cells - round(cells)) > 1e-9:
            raise ConfigError(
                f"{key}.grid.{axis}",
                f"[{lo}, {hi}] is not a whole number of {grid['resolution']}-degree cells",
            )
    if grid["lon"][1] - grid["lon"][0] > 360:
        raise ConfigError(f"{key}.grid.lon", "spans more than 360 degrees")
    for model in exp.get("sweep", {}):
        if model not in exp["models"]:
            raise ConfigError(f"{key}.sweep.{model}", "sweeps a model that is not in 'models'")
    if len(set(exp["seeds"])) != len(exp["seeds"]):
        raise ConfigError(f"{key}.seeds", "contains duplicates")


def _check_shared_grids(config: Mapping[str, Any]) -> None:
    """A dataset is regridded once (results/data/grid/{dataset}.zarr), so its users must agree."""
    seen: dict[str, tuple[str, Any]] = {}
    for name, exp in config["experiments"].items():
        for ds_name in experiment_datasets(exp):
            if ds_name in seen and seen[ds_name][1] != exp["grid"]:
                raise ConfigError(
                    f"experiments.{name}.grid",
                    f"differs from experiments.{seen[ds_name][0]}.grid, but both regrid dataset "
                    f"'{ds_name}'; define a second dataset entry for the second grid",
                )
            seen.setdefault(ds_name, (name, exp["grid"]))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "_".join(_format_value(v) for v in value)
    return str(value)


def variant_name(model: str, overrides: Mapping[str, Any]) -> str:
    """Readable, stable name of a sweep member, e.g. ``cnn-k5-lr0.001``."""
    parts = [f"{ABBREVIATIONS.get(k, k)}{_format_value(v)}" for k, v in sorted(overrides.items())]
    return "-".join([model, *parts])


def expand_variants(
    exp: Mapping[str, Any], exp_name: str = "<experiment>"
) -> dict[str, dict[str, Any]]:
    """Model variants of an experiment: each model crossed with its sweep.

    A variant is ``{"base": model, "model": {...full arch spec...}, "training": {...}}``;
    sweep keys that name training options (lr, batch_size, ...) go to ``training``, the
    rest to ``model``. Model specs get their defaults, so hashes cover every option.
    """
    variants: dict[str, dict[str, Any]] = {}
    for model, spec in exp["models"].items():
        sweep = exp.get("sweep", {}).get(model, {})
        keys = sorted(sweep)
        for values in itertools.product(*(sweep[k] for k in keys)):
            overrides = dict(zip(keys, values, strict=True))
            model_spec = dict(spec)
            training = dict(exp["training"])
            for k, v in overrides.items():
                (training if k in TRAINING_KEYS else model_spec)[k] = v
            name = variant_name(model, overrides)
            key = (
                f"experiments.{exp_name}.sweep.{model}"
                if overrides
                else (f"experiments.{exp_name}.models.{model}")
            )
            model_spec = complete_spec(model_spec, key)
            if name in variants:
                raise ConfigError(f"experiments.sweep.{model}", f"variant name '{name}' repeats")
            variants[name] = {"base": model, "model": model_spec, "training": training}
    return variants


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a raw config and return a resolved deep copy.

    The copy has every default filled in and, per experiment, ``variants``: the expanded
    model variants. Raises ConfigError naming the key of the first mistake.
    """
    resolved = copy.deepcopy(dict(config))
    validate_schema(resolved)
    for name, dataset in resolved["datasets"].items():
        _check_dataset(name, dataset)
    for name, exp in resolved["experiments"].items():
        _check_experiment(name, exp, resolved)
        exp["variants"] = expand_variants(exp, name)
    _check_shared_grids(resolved)
    return resolved


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config (optionally merged with ``overrides``) and resolve it."""
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    if overrides:
        raw.update(overrides)
    return resolve_config(raw)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``: equal configs hash equally across runs."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_hash(config: Mapping[str, Any], experiment: str) -> str:
    """Hash of everything that determines ``prepared.zarr`` for one experiment."""
    exp = config["experiments"][experiment]
    datasets = {n: config["datasets"][n] for n in experiment_datasets(exp)}
    return stable_hash(
        {"datasets": datasets, "grid": exp["grid"], "task": exp["task"], "splits": exp["splits"]}
    )


def run_hash(config: Mapping[str, Any], experiment: str, variant: str, seed: int) -> str:
    """Hash of everything that determines one training run (used to resume safely)."""
    spec = config["experiments"][experiment]["variants"][variant]
    return stable_hash({"prepared": prepare_hash(config, experiment), "spec": spec, "seed": seed})
