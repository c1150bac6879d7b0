"""Load, validate and resolve the pipeline configuration.

The JSON schema (config/schema.yaml) checks types and fills defaults; this module adds
the cross-field checks a schema cannot express (splits, datasets, variables), expands
model sweeps into named variants, and hashes configs so runs can be traced and resumed.
Every failure raises :class:`ConfigError` naming the offending key, before any job runs.
Names become paths and Snakemake wildcards, so they are checked against :data:`SAFE_NAME`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from pipeline.models.specs import complete_spec
from pipeline.sources.basins import STATIC as BASIN_ATTRIBUTES
from pipeline.sources.basins import VARIABLES as BASIN_SERIES
from pipeline.sources.index import VARIABLES as INDEX_SERIES
from pipeline.sources.urls import (
    SCHEMES,
    dataset_params,
    has_credentials,
    listed_urls,
    redact_url,
    scheme_error,
)
from pipeline.tasks import check_task

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

#: Dataset, experiment, model and variant names: they become folder names and wildcards.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

#: MLflow tracking-store schemes (SQLAlchemy's ``dialect+driver`` counts as its dialect);
#: no scheme means a local folder.
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "databricks")

#: Variables each synthetic generator writes (the truth sidecar is not an input).
GENERATOR_VARIABLES = {
    "enso": ("sst", "heat_content"),
    "extremes": ("TMQ", "U850", "V850", "PSL", "LABELS"),
    "basins": (*BASIN_SERIES, *BASIN_ATTRIBUTES),  # series, then static attributes
    "index": tuple(INDEX_SERIES),
}
#: Each generator's default record (sources.synthetic.write_enso, sources.extremes) and
#: the fewest years it needs (ENSO: a monthly climatology and a few cycles).
GENERATOR_YEARS = {
    "enso": {"start_year": 1871, "years": 150, "min_years": 12},
    "extremes": {"start_year": 1996, "years": 4, "min_years": 1},
    "basins": {"start_year": 1990, "years": 10, "min_years": 3},
    "index": {"start_year": 1950, "years": 60, "min_years": 5},
}

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
        "loss",
        "amp",
        "device",
        "deterministic",
        "gpu_resident",
        "num_workers",
        "data",
        "shuffle_buffer_mb",
        "strategy",
        "processes",
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
        self.message = message
        super().__init__(f"config error at '{key}': {message}")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a repeated mapping key is an error, not a silent overwrite."""

    def __init__(self, stream: Any, source: str):
        super().__init__(stream)
        self.source = source

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_duplicates(node, [])
        return super().construct_document(node)

    def _check_duplicates(self, node: yaml.Node, path: list[str]) -> None:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_duplicates(item, [*path[:-1], f"{path[-1]}[{i}]"] if path else [])
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key != "<<" and key in seen:
                    raise ConfigError(
                        ".".join([*path, str(key)]),
                        f"duplicate key in {self.source} line {line} (first at line "
                        f"{seen[key]}); YAML keeps only the last one, so remove or rename one",
                    )
                if key is not None:
                    seen[key] = line
                self._check_duplicates(value_node, [*path, str(key)])


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file strictly: a duplicated key or a syntax error is a ConfigError that
    names the file and the line (PyYAML alone keeps the last duplicate silently)."""
    with open(path) as fh:
        loader = _StrictLoader(fh, str(path))
        try:
            return loader.get_single_data()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
            problem = " ".join(filter(None, [err.context, err.problem]))
            message = f"YAML syntax error in {path}, {where}: {problem}"
            raise ConfigError("<root>", message) from None
        except yaml.YAMLError as err:
            raise ConfigError("<root>", f"YAML error in {path}: {err}") from None
        finally:
            loader.dispose()


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Re-read config files strictly (Snakemake's own loader keeps duplicated keys silently).

    Call from the Snakefile with ``workflow.configfiles`` before resolving the config.
    """
    for path in paths:
        load_yaml(path)


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


def _dotted(path: Iterable[Any]) -> str:
    """``experiments.enso.seeds[0]`` from a jsonschema path (list indices in brackets)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "<root>"


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


def experiment_variables(exp: Mapping[str, Any], config: Mapping[str, Any]) -> set[str]:
    """Every variable the datasets of an experiment provide."""
    return {
        v
        for name in experiment_datasets(exp)
        for v in dataset_variables(name, config["datasets"][name])
    }


def _check_name(key: str, name: str) -> None:
    """Names become folders and Snakemake wildcards: refuse ``..``, ``/``, regex characters."""
    if not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            key,
            f"name {name!r} is not allowed: names become folder names, so they must match "
            f"{SAFE_NAME.pattern} (letters, digits, '_', '.', '+', '-'; no '..')",
        )


def _check_results(results: str) -> None:
    """The results folder must lie inside the working directory (cleanups delete it)."""
    path = PurePosixPath(results)
    if not results.strip() or path.is_absolute() or ".." in path.parts or path == PurePosixPath():
        raise ConfigError(
            "results",
            f"{results!r} must be a relative folder inside the working directory, e.g. "
            "'results' (not empty, not '.', not absolute, no '..')",
        )


def _check_tracking_uri(uri: str) -> None:
    scheme = urlsplit(uri).scheme.lower().split("+")[0]
    if scheme and len(scheme) > 1 and scheme not in TRACKING_SCHEMES:
        raise ConfigError(
            "mlflow.tracking_uri",
            f"unknown scheme '{scheme}' in '{redact_url(uri)}' (use one of "
            f"{', '.join(TRACKING_SCHEMES)}, or a plain folder path)",
        )


def dataset_years(dataset: Mapping[str, Any]) -> tuple[int, int] | None:
    """First and last year a dataset holds, when the config alone can tell (else None)."""
    source = dataset["source"]
    if source["kind"] == "synthetic":
        defaults = GENERATOR_YEARS[source["generator"]]
        first = source.get("start_year", defaults["start_year"])
        return first, first + source.get("years", defaults["years"]) - 1
    years = source.get("year_range")
    if source["kind"] == "http" and years and any("{year}" in u for u in listed_urls(source)):
        return tuple(source["year_range"])
    return None


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


def _check_generator(key: str, source: Mapping[str, Any]) -> None:
    defaults = GENERATOR_YEARS[source["generator"]]
    years = source.get("years", defaults["years"])
    if years < defaults["min_years"]:
        raise ConfigError(
            f"{key}.years",
            f"the {source['generator']} generator needs at least {defaults['min_years']} years",
        )
    if source.get("days", 0) > 365 * years:  # the extremes record is on a noleap calendar
        raise ConfigError(f"{key}.days", f"{source['days']} days exceed the {years} years made")
    if source.get("experts", 1) > 1 and source.get("layout") != "climatenet":
        raise ConfigError(
            f"{key}.experts",
            "expert copies are ClimateNet's file layout: set layout: climatenet",
        )


def _check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    _check_name("datasets", name)
    source = dataset["source"]
    if source["kind"] == "synthetic":
        _check_generator(f"datasets.{name}.source", source)
    if source["kind"] in SCHEMES:
        _check_urls(f"datasets.{name}.source", source)
    dataset_variables(name, dataset)


def _check_urls(key: str, source: Mapping[str, Any]) -> None:
    urls = listed_urls(source)
    if source["kind"] == "zarr" and not isinstance(source["url"], str):
        raise ConfigError(f"{key}.url", "a Zarr source is one store: give one URL")
    for url in urls:
        if problem := scheme_error(source["kind"], url):
            raise ConfigError(f"{key}.url", problem)
        if has_credentials(url):
            log.warning(
                "%s.url holds credentials; prefer ~/.netrc or source.auth_env/"
                "token_env (docs/configuration.md), which keep them out of the config",
                key,
            )


def _check_experiment(name: str, exp: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    _check_name("experiments", name)
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
    for model in exp["models"]:
        _check_name(f"{key}.models", model)
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


def option_key(key: str, exp: Mapping[str, Any], variant: Mapping[str, Any], option: str) -> str:
    """The config key that set a variant's training ``option``: its sweep, or training."""
    if option in exp.get("sweep", {}).get(variant["base"], {}):
        return f"{key}.sweep.{variant['base']}.{option}"
    return f"{key}.training.{option}"


def check_losses(key: str, exp: Mapping[str, Any], losses: Sequence[str], why: str) -> None:
    """Every variant trains on one of the task's ``losses``; the error names the key that
    set the loss (its sweep, or training) and says ``why`` not."""
    for name, variant in exp["variants"].items():
        loss = variant["training"]["loss"]
        if loss not in losses:
            raise ConfigError(
                option_key(key, exp, variant, "loss"), f"'{loss}' (variant {name}) {why}"
            )


def _check_data_parallel(key: str, exp: Mapping[str, Any]) -> None:
    """DDP splits every batch evenly over its processes: the batch must divide."""
    for name, variant in exp["variants"].items():
        training = variant["training"]
        if training["strategy"] == "ddp" and training["batch_size"] % training["processes"]:
            raise ConfigError(
                option_key(key, exp, variant, "batch_size"),
                f"{training['batch_size']} (variant {name}) does not split evenly over "
                f"training.processes = {training['processes']} DDP processes",
            )


def variant_name(model: str, overrides: Mapping[str, Any]) -> str:
    """Readable, stable name of a sweep member, e.g. ``cnn-k5-lr0.001``."""
    parts = [f"{ABBREVIATIONS.get(k, k)}{_format_value(v)}" for k, v in sorted(overrides.items())]
    return "-".join([model, *parts])


@functools.cache
def _training_validator() -> jsonschema.protocols.Validator:
    """Validator of one experiment's ``training`` section (applied to each sweep variant)."""
    schema = load_schema()
    training = schema["$defs"]["experiment"]["properties"]["training"]
    return jsonschema.validators.validator_for(schema)(training)


def _variant(
    spec: Mapping[str, Any],
    training: Mapping[str, Any],
    overrides: Mapping[str, Any],
    positions: Mapping[str, int],
    key: str,
) -> dict[str, Any]:
    """One variant's model and training options, checked by the same rules as the base;
    a bad sweep value is reported as ``{key}.{option}[{position in the sweep list}]``."""
    model_spec, train = dict(spec), dict(training)
    for k, v in overrides.items():
        (train if k in TRAINING_KEYS else model_spec)[k] = v
    errors = list(_training_validator().iter_errors(train))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        option = error.absolute_path[0] if error.absolute_path else ""
        raise ConfigError(f"{key}.{option}[{positions[option]}]", error.message)
    try:
        model_spec = complete_spec(model_spec, key)
    except ConfigError as err:
        option = err.key.removeprefix(f"{key}.")
        if option not in positions:
            raise
        raise ConfigError(f"{err.key}[{positions[option]}]", err.message) from None
    return {"model": model_spec, "training": train}


def expand_variants(
    exp: Mapping[str, Any], exp_name: str = "<experiment>"
) -> dict[str, dict[str, Any]]:
    """Model variants of an experiment: each model crossed with its sweep.

    A variant is ``{"base": model, "model": {...full arch spec...}, "training": {...}}``;
    sweep keys that name training options (lr, batch_size, ...) go to ``training``, the
    rest to ``model``. Model specs get their defaults, so hashes cover every option. Each
    variant is checked like the base (a sweep value ``lr: [-1]`` fails as
    ``experiments.E.sweep.M.lr[0]``), and its name must be a safe name.
    """
    variants: dict[str, dict[str, Any]] = {}
    for model, spec in exp["models"].items():
        complete_spec(dict(spec), f"experiments.{exp_name}.models.{model}")
        sweep = exp.get("sweep", {}).get(model, {})
        key = f"experiments.{exp_name}.sweep.{model}"
        keys = sorted(sweep)
        for positions in itertools.product(*(range(len(sweep[k])) for k in keys)):
            at = dict(zip(keys, positions, strict=True))
            overrides = {k: sweep[k][i] for k, i in at.items()}
            variant = _variant(spec, exp["training"], overrides, at, key)
            name = variant_name(model, overrides)
            _check_name(key, name)
            if name in variants:
                raise ConfigError(key, f"variant name '{name}' repeats")
            variants[name] = {"base": model, **variant}
    return variants


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a raw config and return a resolved deep copy.

    The copy has every default filled in and, per experiment, ``variants``: the expanded
    model variants. Raises ConfigError naming the key of the first mistake.
    """
    resolved = copy.deepcopy(dict(config))
    validate_schema(resolved)
    _check_results(resolved["results"])
    _check_tracking_uri(resolved["mlflow"]["tracking_uri"])
    for name, dataset in resolved["datasets"].items():
        _check_dataset(name, dataset)
    for name, exp in resolved["experiments"].items():
        _check_experiment(name, exp, resolved)
        exp["variants"] = expand_variants(exp, name)
        _check_data_parallel(f"experiments.{name}", exp)
        check_task(f"experiments.{name}", exp, resolved)
    _check_shared_grids(resolved)
    return resolved


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config strictly (optionally merged with ``overrides``) and resolve it."""
    raw = load_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"{path} must hold a mapping of keys, not {type(raw).__name__}")
    if overrides:
        raw.update(overrides)
    return resolve_config(raw)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``: equal configs hash equally across runs."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_hash(config: Mapping[str, Any], experiment: str) -> str:
    """Hash of everything that determines ``prepared.zarr`` for one experiment (credentials
    in a URL do not: a new token must not retrain every model)."""
    exp = config["experiments"][experiment]
    datasets = {n: dataset_params(config["datasets"][n]) for n in experiment_datasets(exp)}
    return stable_hash(
        {"datasets": datasets, "grid": exp["grid"], "task": exp["task"], "splits": exp["splits"]}
    )


def run_hash(config: Mapping[str, Any], experiment: str, variant: str, seed: int) -> str:
    """Hash of everything that determines one training run (used to resume safely)."""
    spec = config["experiments"][experiment]["variants"][variant]
    return stable_hash({"prepared": prepare_hash(config, experiment), "spec": spec, "seed": seed})
