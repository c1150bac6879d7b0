"""Generate config/README.md from the JSON schema, so the reference never drifts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.config import load_schema
from pipeline.models.specs import ARCH_OPTIONS

HEADER = """# Configuration reference

Generated from `config/schema.yaml` by `python -m pipeline config-doc > config/README.md`
(a test fails when this file is out of date). `<name>` stands for a key you choose.
Defaults are filled in by Snakemake's `validate`; cross-field rules (safe names, a
results folder inside the working directory, URL schemes, non-overlapping splits that fit
a sample and lie inside the data, known datasets, variables a dataset provides, positive
leads, whole grid cells, sweep values) are checked by `pipeline.config.resolve_config`.
Every error names the key; see docs/configuration.md for naming rules and credentials.

| key | type | default | description |
|---|---|---|---|
"""


def _type(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(_type(s) for s in schema["oneOf"])
    kind = schema.get("type", "")
    if kind == "array":
        return f"list of {_type(schema.get('items', {})) or 'values'}"
    return kind if isinstance(kind, str) else " or ".join(kind)


def _rows(schema: Mapping[str, Any], root: Mapping[str, Any], prefix: str) -> Iterator[str]:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        resolved = root["$defs"][sub["$ref"].split("/")[-1]] if "$ref" in sub else sub
        default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
        description = " ".join(str(sub.get("description", resolved.get("description", ""))).split())
        if schema.get("description", "").startswith("kind:"):
            description = f"({schema['description'].rstrip('.')}) {description}"
        yield f"| `{key}` | {_type(resolved)} | {default} | {description} |"
        if resolved.get("type") == "object":
            yield from _rows(resolved, root, f"{key}.")
    yield from _branch_rows(schema, root, prefix)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and (extra.get("properties") or "$ref" in extra):
        yield from _rows(extra, root, f"{prefix}<name>.")


def _branch_rows(schema: Mapping[str, Any], root: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """The keys of each kind's branch, marked "(kind: ...)"; a key that several kinds
    share word for word is listed once, with all of them."""
    kinds_of: dict[tuple[str, str], list[str]] = {}  # (row before, row after the mark)
    for part in schema.get("allOf", []):
        for branch in (part.get("then"), part.get("else")):
            if branch and "$ref" in branch:
                resolved = root["$defs"][branch["$ref"].split("/")[-1]]
                for row in _rows(resolved, root, prefix):
                    if not row.startswith(f"| `{prefix}kind`"):
                        before, _, marked = row.partition("(kind: ")
                        kind, _, after = marked.partition(") ")
                        kinds_of.setdefault((before, after), []).append(kind)
    for (before, after), kinds in kinds_of.items():
        yield f"{before}(kind: {', '.join(kinds)}) {after}"


def config_reference() -> str:
    schema = load_schema()
    lines = [HEADER.rstrip("\n"), *_rows(schema, schema, "")]
    lines += [
        "",
        "## Model options (`experiments.<name>.models.<name>`)",
        "",
        "| arch | option | default |",
        "|---|---|---|",
    ]
    for arch, options in ARCH_OPTIONS.items():
        lines += [f"| `{arch}` | `{k}` | `{json.dumps(v)}` |" for k, v in options.items()]
    return "\n".join(lines) + "\n"
