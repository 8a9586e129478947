"""E2E-VarNet: parity with fastMRI's ``VarNet`` (instance norm, copied weights), the data
transform against fastMRI's ``VarNetDataTransform``, and the single-coil refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.models.varnet import VarNet, load_fastmri_varnet_weights


def _fastmri_varnet(**kwargs):
    from fastmri.models import VarNet as FastmriVarNet

    torch.manual_seed(0)
    return FastmriVarNet(**kwargs).eval()


def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial weights everywhere (dc weights too), so the parity test checks every term."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("num_low", [None, 8])
def test_outputs_equal_fastmri_varnet_with_its_weights(num_low):
    reference = _fastmri_varnet(num_cascades=2, sens_chans=4, sens_pools=2, chans=6, pools=2)
    _randomise(reference)
    ours = VarNet(cascades=2, chans=6, pools=2, sens_chans=4, sens_pools=2, norm="instance").eval()
    load_fastmri_varnet_weights(ours, reference.state_dict(), pools=2, sens_pools=2)

    g = torch.Generator().manual_seed(2)
    kspace = torch.randn(2, 3, 40, 36, 2, generator=g)
    mask = torch.rand(2, 1, 1, 36, 1, generator=g) < 0.4
    mask[..., 14:22, :] = True
    masked = kspace * mask
    with torch.no_grad():
        expected = reference(masked, mask, num_low)
        got = ours(torch.view_as_complex(masked.contiguous()), mask[..., 0], num_low)
    assert got.shape == expected.shape == (2, 40, 36)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_group_norm_default_and_gradients_reach_every_cascade():
    model = VarNet(cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=2)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    kspace = torch.randn(1, 2, 32, 32, dtype=torch.complex64)
    mask = torch.zeros(1, 1, 1, 32, dtype=torch.bool)
    mask[..., ::3] = True
    mask[..., 13:19] = True
    model(kspace * mask, mask).mean().backward()
    # the first cascade starts from the measured k-space, so its data term (and weight's gradient) is 0
    assert model.cascades[1].dc_weight.grad.abs() > 0
    for part in (model.sens_net, *model.cascades):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters() if p.ndim > 1)


def test_single_coil_kspace_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="multi-coil"):
        VarNet(cascades=1, chans=4, pools=2, sens_chans=2, sens_pools=2)(
            torch.zeros(1, 32, 32, dtype=torch.complex64), torch.ones(1, 1, 32, dtype=torch.bool))
