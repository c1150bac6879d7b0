"""Options of each architecture, with defaults. Torch-free, so the config can be checked
(and variant specs completed) before any job runs."""

from __future__ import annotations

from typing import Any

UNET_OPTIONS: dict[str, Any] = {
    "depth": 2,
    "base": 16,
    "kernel": 3,
    "activation": "relu",
    "padding": "periodic",
}

ARCH_OPTIONS: dict[str, dict[str, Any]] = {
    "cnn": {
        "filters": [16, 32],  # one conv block per entry
        "kernel": 5,
        "stride": 1,
        "activation": "relu",
        "pool": "max",  # max | avg | none
        "dropout": 0.0,
        "head": "gap",  # gap (global average pooling) | flatten
        "dense": [32],  # hidden dense layers of the head
        "padding": "periodic",  # periodic (circular in lon, zero in lat) | zero
    },
    "resnet": {
        "width": 16,
        "blocks": 2,
        "kernel": 3,
        "activation": "relu",
        "dropout": 0.0,
        "padding": "periodic",
    },
    "lstm": {
        "hidden": 64,
        "layers": 1,
        "dropout": 0.0,
        "pooled": 0,  # >0: also learn a pooled k x k summary of each map
        "forget_bias": 0,  # initial forget-gate bias; 3 carries gradients across a year
    },
    "rnn": {  # an Elman (tanh) RNN shaped like the LSTM: the vanishing-gradient reference
        "hidden": 64,
        "layers": 1,
        "dropout": 0.0,
    },
    "tcn": {
        "filters": [32, 32, 32, 32, 32, 32],  # one residual block of two causal convs each
        "kernel": 5,
        "dilation": 2,  # block i is dilated by dilation**i: receptive field 505 steps
        "activation": "relu",
        "dropout": 0.0,
    },
    "mlp": {
        "lags": 0,  # the last ``lags`` steps of the window are flattened; 0: all of them
        "hidden": [64, 64],  # hidden layers; [] is a linear AR(p) model with covariates
        "activation": "relu",
        "dropout": 0.0,
    },
    "convlstm": {
        "hidden": 16,
        "kernel": 3,
        "layers": 1,
        "downsample": 1,  # average-pool each map by this factor before the recurrent cells
        "padding": "periodic",
    },
    "unet": UNET_OPTIONS,
    "encdec": dict(UNET_OPTIONS),  # the U-Net without its skip connections (models/unet.py)
    "fcn": {
        "filters": [32, 32, 32, 32],  # one full-resolution conv per entry
        "kernel": 3,
        "dilation": 1,  # conv i is dilated by dilation**i (2: 1, 2, 4, 8)
        "activation": "relu",
        "dropout": 0.0,
        "padding": "periodic",
    },
}

#: Architectures whose output is one map per output channel, at the input's resolution.
MAP_ARCHS = frozenset({"unet", "encdec", "fcn"})
#: Architectures that read a sequence of vectors (batch, time, features), as series
#: studies give them; they also take maps, reduced to area-weighted channel means.
SERIES_ARCHS = frozenset({"lstm", "rnn", "tcn", "mlp"})

CHOICES = {
    "activation": {"relu", "tanh", "gelu", "elu", "leaky_relu", "sigmoid"},
    "pool": {"max", "avg", "none"},
    "head": {"gap", "flatten"},
    "padding": {"periodic", "zero"},
}


def complete_spec(spec: dict[str, Any], key: str) -> dict[str, Any]:
    """Fill defaults into a model spec and check every option; raise ValueError naming it.

    ``key`` is the config path of the spec (e.g. ``experiments.enso.models.cnn``).
    """
    from pipeline.config import ConfigError

    arch = spec["arch"]
    if arch not in ARCH_OPTIONS:  # the schema checks models; a sweep may still set arch
        raise ConfigError(f"{key}.arch", f"'{arch}' is not one of {sorted(ARCH_OPTIONS)}")
    allowed = ARCH_OPTIONS[arch]
    unknown = sorted(set(spec) - set(allowed) - {"arch"})
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}",
            f"unknown option for arch '{arch}' (options: {', '.join(sorted(allowed))})",
        )
    full = {"arch": arch, **allowed, **spec}
    for name, value in full.items():
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigError(f"{key}.{name}", f"'{value}' is not one of {sorted(CHOICES[name])}")
        default = allowed.get(name)
        is_int_option = isinstance(default, int) and not isinstance(default, bool)
        if is_int_option and (not isinstance(value, int) or value < 0):
            raise ConfigError(f"{key}.{name}", f"must be a non-negative integer, got {value!r}")
        if isinstance(default, list) and (
            not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value)
        ):
            raise ConfigError(
                f"{key}.{name}", f"must be a list of positive integers, got {value!r}"
            )
        if isinstance(default, float) and not (isinstance(value, int | float) and 0 <= value < 1):
            raise ConfigError(f"{key}.{name}", f"must be a number in [0, 1), got {value!r}")
    for name in (
        "kernel",
        "width",
        "hidden",
        "base",
        "depth",
        "layers",
        "blocks",
        "stride",
        "downsample",
        "dilation",
    ):
        if isinstance(full.get(name), int) and full[name] < 1:  # mlp's hidden is a list
            raise ConfigError(f"{key}.{name}", f"must be at least 1, got {full[name]}")
    return full
