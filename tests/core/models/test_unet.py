"""U-Net: both ranks, any input size, anisotropic pooling, registry."""

from __future__ import annotations

import pytest
import torch

from segstudio.core.models import available_models, build_model, pooling_plan
from segstudio.core.models import unet as unet_module
from segstudio.core.models.unet import NORMS, UNet


@pytest.mark.parametrize("shape", [(1, 1, 5, 7), (2, 1, 33, 64), (1, 1, 1, 1)])
def test_2d_any_size(shape):
    net = build_model("unet", spatial_dims=2, in_channels=1, out_channels=3, features=(4, 8, 16))
    assert net(torch.randn(shape)).shape == (shape[0], 3, *shape[2:])


def test_3d_anisotropic_does_not_pool_thin_z():
    plan = pooling_plan(3, 4, spacing=(4.0, 0.5, 0.5), patch_size=(8, 64, 64))
    assert plan[0] == (1, 2, 2)  # z is 8x coarser: keep it
    assert all(s[0] == 1 for s in plan[:2])
    net = build_model("unet", spatial_dims=3, out_channels=2, features=(4, 8, 8, 8), strides=plan)
    x = torch.randn(1, 1, 5, 30, 31)
    assert net(x).shape == (1, 2, 5, 30, 31)


def test_isotropic_plan_stops_at_small_sizes():
    # 16 -> 8 -> 4, then 4 would fall below the minimum feature map of 4
    assert pooling_plan(2, 4, patch_size=(16, 128)) == [(2, 2), (2, 2), (1, 2)]


def test_multichannel_input_and_registry():
    assert "unet" in available_models()
    net = build_model("unet", spatial_dims=2, in_channels=3, out_channels=2, features=(4, 8))
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("dims", [2, 3])
def test_every_norm_builds_trains_and_predicts_any_size(norm, dims):
    net = build_model("unet", spatial_dims=dims, out_channels=3, features=(4, 8), norm=norm)
    shape = (2, 1, *([5] * (dims - 1)), 7)
    out = net(torch.randn(shape))
    out.mean().backward()
    assert out.shape == (2, 3, *shape[2:])
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, *shape[2:])).shape == (1, 3, *shape[2:])


def test_norm_layers_and_bias():
    none = build_model("unet", spatial_dims=2, out_channels=2, features=(4, 8), norm="none")
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in none.modules())
    assert all(m.bias is not None for m in none.modules() if isinstance(m, torch.nn.Conv2d))
    batch = build_model("unet", spatial_dims=2, out_channels=2, features=(4, 8), norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in batch.modules())
    with pytest.raises(ValueError, match="norm must be one of"):
        build_model("unet", spatial_dims=2, norm="layer")



def test_runs_written_before_the_norm_option_load_as_instance_norm(tmp_path):
    import json

    from segstudio.core.config import TrainConfig
    from segstudio.core.run import load_run, model_from_config, save_run

    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(), norm="instance")
    model = model_from_config(cfg)
    save_run(tmp_path / "old", cfg, model)
    data = json.loads((tmp_path / "old" / "config.json").read_text())
    del data["norm"]  # config.json of segstudio before BatchNorm became the default
    (tmp_path / "old" / "config.json").write_text(json.dumps(data))
    old = load_run(tmp_path / "old")
    assert old.config.norm == "instance"
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(old.model(x), model.eval()(x))
    assert TrainConfig().norm == "batch"


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", [(2, 1, 37, 45), (2, 2, 6, 21, 19)])
def test_channels_last_on_cpu_computes_what_the_default_layout_does(monkeypatch, norm, shape):
    """The CPU layout is a speed choice only: the same logits and gradients as the default
    layout (to float rounding), a contiguous output, for every norm, 2D and 3D, padded sizes."""
    spatial = len(shape) - 2
    torch.manual_seed(0)
    net = UNet(spatial, in_channels=shape[1], out_channels=3, features=(8, 16, 32), norm=norm)
    x = torch.randn(*shape)

    def run(channels_last: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        monkeypatch.setattr(unet_module, "CHANNELS_LAST_ON_CPU", channels_last)
        net.zero_grad()
        out = net(x)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters()]

    expected, expected_grads = run(False)
    got, grads = run(True)
    assert unet_module.cpu_memory_format(x) is not None
    assert got.is_contiguous() and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    for g, e in zip(grads, expected_grads):  # summed in another order: relative to the whole
        assert float((g - e).norm() / e.norm().clamp_min(1e-12)) < 1e-4


def test_traces_and_other_devices_keep_the_default_layout():
    """Exports trace a graph without layout changes; only CPU tensors of rank 4 or 5 change."""
    x = torch.randn(1, 1, 16, 16)
    seen = []
    net = UNet(2, 1, 2, features=(4, 8))
    net.register_forward_pre_hook(lambda m, args: seen.append(unet_module.cpu_memory_format(args[0])))
    net(x)
    torch.jit.trace(net, x, check_trace=False)
    assert seen == [torch.channels_last, None]
    assert unet_module.cpu_memory_format(torch.randn(2, 3)) is None
    assert unet_module.cpu_memory_format(torch.randn(1, 1, 4, 4, 4, device="meta")) is None
