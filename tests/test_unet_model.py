"""The U-Net: fastMRI's shape, odd sizes, and each normalisation mode."""

from __future__ import annotations

import pytest
import torch
from fastmri.models import Unet as FastmriUnet
from torch import nn

from mrirecon.models import NORM_TYPES, Unet, make_norm
from mrirecon.models.norms import group_count


@pytest.mark.parametrize("norm", NORM_TYPES)
@pytest.mark.parametrize("size", [(32, 32), (37, 29), (20, 45)])
def test_output_shape_matches_input_for_every_norm_and_odd_sizes(norm: str, size: tuple[int, int]) -> None:
    model = Unet(1, 1, chans=4, num_pool_layers=2, norm=norm, groups=32)
    out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_group_count_is_a_divisor_not_above_the_requested_groups() -> None:
    assert group_count(64, 32) == 32
    assert group_count(16, 32) == 16
    assert group_count(48, 32) == 24
    assert group_count(6, 4) == 3
    for channels in range(1, 70):
        g = group_count(channels, 32)
        assert channels % g == 0 and g <= 32
    layer = make_norm("group", 8, 32)
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == 8


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown normalisation"):
        make_norm("weight", 8)


def _copy_fastmri_weights(ours: Unet, theirs: FastmriUnet) -> None:
    def conv_pair(dst: nn.Module, src: nn.Module) -> None:
        dst.weight.data.copy_(src.weight.data)
        if src.bias is not None:
            dst.bias.data.copy_(src.bias.data)

    def block(dst, src) -> None:
        conv_pair(dst.layers[0], src.layers[0])
        conv_pair(dst.layers[4], src.layers[4])

    for d, s in zip(ours.down, theirs.down_sample_layers, strict=True):
        block(d, s)
    block(ours.bottleneck, theirs.conv)
    for d, s in zip(ours.up_transpose, theirs.up_transpose_conv, strict=True):
        conv_pair(d.layers[0], s.layers[0])
    for d, s in zip(list(ours.up_conv)[:-1], list(theirs.up_conv)[:-1], strict=True):
        block(d, s)
    block(ours.up_conv[-1], theirs.up_conv[-1][0])
    conv_pair(ours.head, theirs.up_conv[-1][1])


@pytest.mark.parametrize("size", [(32, 32), (37, 29)])
def test_same_function_as_fastmri_unet_with_instance_norm(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    theirs = FastmriUnet(1, 1, chans=4, num_pool_layers=3).eval()
    ours = Unet(1, 1, chans=4, num_pool_layers=3, norm="instance").eval()
    assert sum(p.numel() for p in ours.parameters() if p.ndim > 1) == sum(
        p.numel() for p in theirs.parameters() if p.ndim > 1
    )
    _copy_fastmri_weights(ours, theirs)
    x = torch.randn(2, 1, *size)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_uses_running_statistics_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = Unet(1, 1, chans=4, num_pool_layers=2, norm="batch")
    x = torch.randn(4, 1, 16, 16) * 3 + 1
    bn = model.down[0].layers[1]
    before = bn.running_mean.clone()
    model.train()
    train_out = model(x)
    assert not torch.equal(bn.running_mean, before)  # training updates the running statistics
    model.eval()
    with torch.no_grad():
        eval_full = model(x)
        eval_one = model(x[:1])
    # eval mode normalises with stored statistics: an image's output does not depend on its batch
    torch.testing.assert_close(eval_one, eval_full[:1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(eval_full, train_out.detach(), atol=1e-4)


@pytest.mark.parametrize("norm", ["group", "instance", "layer", "none"])
def test_other_norms_need_no_running_statistics(norm: str) -> None:
    torch.manual_seed(0)
    model = Unet(1, 1, chans=4, num_pool_layers=2, norm=norm)
    assert not any("running" in name for name, _ in model.named_buffers())
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
        single = model(x[1:2])
    torch.testing.assert_close(train_out, eval_out)
    torch.testing.assert_close(single, eval_out[1:2], rtol=1e-5, atol=1e-5)
