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


# --- the data transform -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def multicoil_volume(tmp_path_factory):
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

    out = tmp_path_factory.mktemp("varnet_data")
    summary = generate_sample_data(out, SampleDataConfig(volumes=1, slices=2, coils=3, seed=11), quiet=True)
    return out, summary.results[0].output


def test_transform_matches_fastmri_varnet_data_transform(multicoil_volume):
    from fastmri.data import SliceDataset as FastmriSlices
    from fastmri.data.subsample import RandomMaskFunc
    from fastmri.data.transforms import VarNetDataTransform

    from mrirecon.io import open_volume
    from mrirecon.mri.masks import MaskSpec, make_mask, volume_seed
    from mrirecon.train.dataset import SliceDataset, volume_crop
    from mrirecon.train.transforms import varnet_inputs

    folder, path = multicoil_volume
    reference = FastmriSlices(folder, "multicoil", transform=VarNetDataTransform(RandomMaskFunc([0.08], [4]), True),
                              dataset_cache_file=folder / "cache.pkl")
    spec = MaskSpec("random", 4, 0.08)
    ours = SliceDataset([path], spec, train=False, kind="varnet")
    with open_volume(path) as volume:
        for index in range(volume.num_slices):
            expected = reference[index]
            mask, num_low = make_mask(spec, volume.kspace_shape, volume_seed(volume.path.name), volume.padding)
            kspace = torch.from_numpy(volume.read_kspace(index, index + 1))
            got = varnet_inputs(kspace, torch.from_numpy(mask), volume.recon_crop, volume.padding, num_low)
            torch.testing.assert_close(got.kspace[0], torch.view_as_complex(expected.masked_kspace), rtol=0, atol=0)
            assert torch.equal(got.mask[0], expected.mask[..., 0])
            assert got.num_low_frequencies == expected.num_low_frequencies
            assert got.crop == tuple(expected.crop_size)
            item = ours[index]  # the training dataset yields the same sample
            torch.testing.assert_close(item["kspace"], got.kspace[0], rtol=0, atol=0)
            assert torch.equal(item["mask"], got.mask[0]) and int(item["num_low"]) == num_low
            assert float(item["max"]) == pytest.approx(expected.max_value)
            torch.testing.assert_close(item["target"], expected.target)
            assert volume_crop(volume) == tuple(expected.target.shape)


def test_single_coil_files_are_refused_for_the_varnet(tmp_path):
    from mrirecon.io import InputError
    from mrirecon.mri.masks import MaskSpec
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
    from mrirecon.train.dataset import SliceDataset
    from mrirecon.train.transforms import varnet_inputs

    summary = generate_sample_data(tmp_path, SampleDataConfig(challenge="singlecoil", volumes=1, slices=1), quiet=True)
    with pytest.raises(InputError, match="single-coil; the VarNet needs multi-coil data"):
        SliceDataset([summary.results[0].output], MaskSpec("random", 4), train=True, kind="varnet")
    with pytest.raises(ValueError, match="use the U-Net"):
        varnet_inputs(torch.zeros(1, 8, 8, dtype=torch.complex64), torch.ones(8), (8, 8))


def test_readout_crop_is_exact_and_all_virtual_coils_keep_the_rss():
    from mrirecon.mri.coils import rss
    from mrirecon.mri.crop import center_crop
    from mrirecon.mri.fft import ifft2c
    from mrirecon.models.varnet import compress_coils, crop_readout

    g = torch.Generator().manual_seed(3)
    kspace = torch.randn(2, 5, 48, 20, generator=g, dtype=torch.complex64)
    images = ifft2c(kspace)
    assert torch.allclose(ifft2c(crop_readout(kspace, 24)), center_crop(images, (24, 20)), atol=1e-5)
    assert torch.allclose(rss(ifft2c(compress_coils(kspace, 5)), dim=1), rss(images, dim=1), atol=1e-4)
    fewer = compress_coils(kspace, 2)
    assert fewer.shape == (2, 2, 48, 20)
    # the two strongest components hold more energy than any two of the original coils
    assert fewer.abs().square().sum() > kspace.abs().square().sum(dim=(0, 2, 3)).topk(2).values.sum()


@pytest.mark.parametrize("readout_crop", [False, True])
def test_untrained_warm_start_varnet_is_the_zero_filled_image(readout_crop):
    """With ``warm_start`` the untrained network is plain data consistency: its output is the RSS
    of the zero-filled coil images (cropped to the target's rows with ``readout_crop``)."""
    from mrirecon.mri.coils import rss
    from mrirecon.mri.crop import center_crop
    from mrirecon.mri.fft import ifft2c

    g = torch.Generator().manual_seed(4)
    kspace = torch.randn(2, 4, 48, 32, generator=g, dtype=torch.complex64)
    mask = torch.rand(2, 1, 1, 32, generator=g) < 0.4
    mask[..., 13:19] = True
    masked = kspace * mask
    model = VarNet(cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2, groups=2, readout_crop=readout_crop,
                   virtual_coils=4, warm_start=True).eval()
    with torch.no_grad():
        output = model(masked, mask, rows=24)
    expected = rss(ifft2c(masked), dim=1)
    assert output.shape == ((2, 24, 32) if readout_crop else (2, 48, 32))
    assert torch.allclose(center_crop(output, (24, 32)), center_crop(expected, (24, 32)), atol=1e-4)


@pytest.mark.parametrize("readout_crop", [False, True])
def test_hard_dc_varnet_keeps_the_measured_samples_of_the_last_cascade(readout_crop):
    """``hard_dc``: the output is the RSS of the last cascade's k-space with the measured samples
    put back; the unmeasured samples are the network's."""
    from mrirecon.mri.coils import data_consistent_coils, rss
    from mrirecon.models.varnet import crop_readout
    from mrirecon.mri.fft import ifft2c

    g = torch.Generator().manual_seed(5)
    kspace = torch.randn(2, 3, 40, 32, generator=g, dtype=torch.complex64)
    mask = torch.rand(2, 1, 1, 32, generator=g) < 0.4
    mask[..., 13:19] = True
    masked = kspace * mask
    kwargs = dict(cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2, groups=2, readout_crop=readout_crop)
    torch.manual_seed(0)
    soft = VarNet(**kwargs).eval()
    _randomise(soft)
    hard = VarNet(**kwargs, hard_dc=True).eval()
    hard.load_state_dict(soft.state_dict())
    last = {}
    hard.cascades[-1].register_forward_hook(lambda module, args, out: last.update(kspace=out))
    with torch.no_grad():
        out_soft, out_hard = soft(masked, mask, rows=24), hard(masked, mask, rows=24)
    measured = crop_readout(masked, 24) if readout_crop else masked
    assert torch.allclose(out_hard, rss(data_consistent_coils(last["kspace"], measured, mask), dim=1), atol=1e-5)
    assert torch.allclose(out_soft, rss(ifft2c(last["kspace"]), dim=1), atol=1e-5)
    assert (out_hard - out_soft).abs().max() > 1e-3
