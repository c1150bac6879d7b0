"""Segmentation networks: U-Net, the encoder-decoder without skips, and the FCN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.config import ConfigError
from pipeline.models.fcn import FCN
from pipeline.models.layers import PaddedConv2d
from pipeline.models.specs import ARCH_OPTIONS, complete_spec
from pipeline.models.unet import UNet


def build(arch: str, in_channels: int = 4, n_classes: int = 3, **options) -> nn.Module:
    """A segmentation network of ``arch`` (unet | encdec | fcn) with seeded weights;
    ``options`` that ``arch`` does not have are left out."""
    ours = {k: v for k, v in options.items() if k in ARCH_OPTIONS[arch]}
    spec = complete_spec({"arch": arch, **ours}, "m")
    torch.manual_seed(0)
    if arch == "fcn":
        return FCN(spec, in_channels, n_classes)
    return UNet(spec, in_channels, n_classes, skips=arch == "unet")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_shapes(model: nn.Module, kernel: int) -> list[tuple[int, ...]]:
    return [
        tuple(m.weight.shape)
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (kernel, kernel)
    ]


@pytest.mark.parametrize("arch", ["unet", "encdec", "fcn"])
@pytest.mark.parametrize(("lat", "lon"), [(9, 18), (72, 144)])
def test_logits_per_pixel_from_maps_or_windows(arch: str, lat: int, lon: int) -> None:
    model = build(arch, in_channels=4, base=4, filters=[4, 4])  # 4 = history 2 x 2 channels
    window = torch.randn(2, 2, 2, lat, lon)
    logits = model(window)
    assert logits.shape == (2, 3, lat, lon)
    assert torch.equal(model(window.reshape(2, 4, lat, lon)), logits)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("arch", "options", "shift"),
    [
        ("unet", {"depth": 2}, 4),  # pooling commutes with rolls by multiples of 2**depth
        ("encdec", {"depth": 2}, 8),
        ("fcn", {"dilation": 2, "kernel": 4}, 5),  # full resolution: any roll
    ],
)
def test_periodic_padding_makes_longitude_rolls_commute(arch, options, shift) -> None:
    model = build(arch, base=4, filters=[4, 4, 4], **options).eval()
    x = torch.randn(2, 4, 9, 16)
    rolled = model(torch.roll(x, shift, dims=-1))
    torch.testing.assert_close(rolled, torch.roll(model(x), shift, dims=-1))
    zero = build(arch, base=4, filters=[4, 4, 4], padding="zero", **options).eval()
    shifted = zero(torch.roll(x, shift, dims=-1))
    assert not torch.allclose(shifted, torch.roll(zero(x), shift, dims=-1), atol=1e-3)


def test_encdec_is_the_unet_less_its_skip_fusion() -> None:
    unet, encdec = build("unet", depth=2, base=8), build("encdec", depth=2, base=8)
    fusion = sum(2 * w * w + w for w in (8, 16))  # the 1x1 convs that merge skip and upsampled
    assert n_params(unet) - n_params(encdec) == fusion
    assert conv_shapes(encdec, 3) == conv_shapes(unet, 3)  # same encoder, bottleneck, decoder
    assert conv_shapes(encdec, 1) == [(3, 8, 1, 1)]  # only the output layer is 1x1


def test_encdec_sees_the_input_only_through_the_bottleneck() -> None:
    """With the bottleneck's output frozen, the encdec output no longer depends on the
    input; the U-Net's still does, through its skips."""
    x, y = torch.randn(2, 1, 4, 9, 16)
    for arch, depends in [("encdec", False), ("unet", True)]:
        model = build(arch, depth=2, base=4).eval()
        frozen = torch.randn(1, 16, 3, 4)
        model.bottom.register_forward_hook(lambda *_, f=frozen: f)
        assert torch.allclose(model(x), model(y)) == (not depends)


def test_fcn_receptive_field_grows_with_dilation() -> None:
    """The gradient of one output pixel reaches exactly the pixels its kernels span,
    across the longitude seam and never past a pole."""
    for dilation, reach in [(1, 3), (2, 7)]:  # kernel 3: sum of dilation**i for i < 3
        model = build("fcn", filters=[4, 4, 4], dilation=dilation, activation="tanh").eval()
        x = torch.randn(1, 4, 12, 20, requires_grad=True)
        model(x)[0, 0, 1, 0].backward()
        seen = x.grad[0].abs().sum(0) > 0
        lats = seen.any(1).nonzero().flatten().tolist()
        lons = seen.any(0).nonzero().flatten().tolist()
        assert lats == list(range(min(1 + reach, 11) + 1))
        assert lons == sorted(v % 20 for v in range(-reach, reach + 1))  # through the seam


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (4, 1), (3, 3), (4, 2)])
def test_dilated_padded_conv_keeps_the_map_size(kernel: int, dilation: int) -> None:
    conv = PaddedConv2d(2, 3, kernel, "periodic", dilation=dilation)
    assert conv(torch.randn(1, 2, 9, 18)).shape == (1, 3, 9, 18)


def test_new_arch_options() -> None:
    assert complete_spec({"arch": "encdec"}, "m") == {
        **complete_spec({"arch": "unet"}, "m"),
        "arch": "encdec",
    }
    fcn = complete_spec({"arch": "fcn"}, "m")
    assert fcn["dilation"] == 1 and fcn["padding"] == "periodic"
    with pytest.raises(ConfigError) as info:
        complete_spec({"arch": "fcn", "dilation": 0}, "m")
    assert info.value.key == "m.dilation"
    with pytest.raises(ConfigError) as info:
        complete_spec({"arch": "encdec", "skips": False}, "m")
    assert info.value.key == "m.skips"
