"""The shared preprocessing: grids, slabs, neighbours, the dense-area prior."""

from __future__ import annotations

import numpy as np
import pytest

from ichinfer import preprocess as pp


def test_window_matches_formula():
    hu = np.array([-1000, 0, 40, 80, 1000], dtype=np.float32)
    np.testing.assert_allclose(pp.window(hu, 40, 80), [0, 0, 0.5, 1, 1])


def test_clean_hu_sets_padding_to_air_and_clips():
    out = pp.clean_hu(np.array([-3024, -2000, -1024, 40, 5000]))
    np.testing.assert_array_equal(out, [-1024, -1024, -1024, 40, 3071])
    assert out.dtype == np.float32


def test_model_grid_round_trip_keeps_geometry():
    img = np.full((40, 60), -1024, np.float32)
    img[10:30, 20:40] = 1.0
    grid = pp.to_model_grid(img, 30)
    assert grid.shape == (30, 30)
    assert grid[0, 0] == -1024  # padding is air
    back = pp.from_model_grid((grid > 0).astype(np.float32), img.shape)
    assert back.shape == img.shape
    assert np.abs((back > 0.5).astype(int) - (img > 0).astype(int)).sum() < 0.1 * (img > 0).sum()


def test_thick_series_runs_every_slice_and_uses_direct_neighbours():
    loc = np.array([20.0, 15.0, 10.0, 5.0])  # head -> foot, 5 mm
    assert list(pp.sample_indices(loc, 5.0)) == [0, 1, 2, 3]
    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    x = pp.model_inputs(stack, loc, [0, 2], slab_mm=5.0, context=1)
    assert x.shape == (2, 2, 2, 3)
    assert list(x[0, 0, 0]) == [0, 0, 1]  # edge repeated on the head side
    assert list(x[1, 0, 0]) == [1, 2, 3]


def test_thin_series_is_sampled_and_averaged_into_slabs():
    loc = 50.0 - 0.625 * np.arange(80)  # 0.625 mm, head -> foot
    sampled = pp.sample_indices(loc, 5.0)
    steps = np.abs(np.diff(loc[sampled]))
    assert len(sampled) < 25 and steps[:-1].min() >= 2.5 - 1e-6 and steps.max() <= 2.5 + 1e-6
    stack = loc[:, None, None].astype(np.float32) * np.ones((80, 2, 2), np.float32)
    x = pp.model_inputs(stack, loc, [40], slab_mm=5.0, context=1)
    # slab means are centred on the slice and its neighbours 5 mm towards head and foot
    np.testing.assert_allclose(x[0, 0, 0], [loc[40] + 5, loc[40], loc[40] - 5], atol=0.35)
    nearest = pp.nearest_sampled(loc, sampled)
    assert np.abs(loc - loc[sampled][nearest]).max() <= 1.25 + 1e-6


def test_slabs_kept_across_calls_give_the_same_inputs():
    """``slabs`` keeps each slab for the next batch and the next model of the same grid: the
    inputs are those built from scratch, and a slab is averaged once."""
    rng = np.random.default_rng(0)
    loc = 50.0 - 0.625 * np.arange(80)
    stack = rng.normal(40.0, 20.0, (80, 8, 8)).astype(np.float32)
    sampled = pp.sample_indices(loc, 5.0)
    kept: dict = {}
    for batch in (sampled[:5], sampled[5:], sampled[3:9]):
        fresh = pp.model_inputs(stack, loc, batch, slab_mm=5.0, context=1)
        got = pp.model_inputs(stack, loc, batch, slab_mm=5.0, context=1, slabs=kept)
        np.testing.assert_array_equal(got, fresh)
    assert len(kept) == len(set(kept)) and all(k[0] == 5.0 for k in kept)
    first = dict(kept)
    pp.model_inputs(stack, loc, sampled, slab_mm=5.0, context=1, slabs=kept)
    assert all(kept[k] is v for k, v in first.items())  # reused, not rebuilt
    # another slab thickness on the same grid gets its own slabs
    pp.model_inputs(stack, loc, sampled[:2], slab_mm=3.0, context=1, slabs=kept)
    assert any(k[0] == 3.0 for k in kept)
    # slices out of order: a slab's members are not consecutive, still their mean
    shuffled = rng.permutation(80)
    members = np.abs(loc - loc[40]) <= 2.5 + 1e-3
    np.testing.assert_allclose(pp.slab(stack[shuffled], loc[shuffled], loc[40], 5.0),
                               stack[members].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(pp.slab(stack, loc, loc[40], 5.0),
                                  stack[np.flatnonzero(members)].mean(axis=0, dtype=np.float32))


@pytest.mark.parametrize("step", [-0.625, 0.625, -5.0])
def test_between_sampled_interpolates_linearly_in_location(step):
    loc = 50.0 + step * np.arange(41)
    sampled = pp.sample_indices(loc, 5.0)
    lo, hi, w = pp.between_sampled(loc, sampled)
    # a quantity linear in location comes back exactly; sampled slices get their own output
    got = (1 - w) * loc[sampled][lo] + w * loc[sampled][hi]
    np.testing.assert_allclose(got, loc, atol=1e-4)
    at = np.searchsorted(sampled, sampled)
    assert np.all(np.where(w[sampled] < 0.5, lo[sampled], hi[sampled]) == at)
    # beyond the sampled range: the end's own output
    inner = np.array([12, 4, 8])  # any order
    lo, hi, w = pp.between_sampled(loc, inner)
    out = (1 - w) * loc[inner][lo] + w * loc[inner][hi]
    assert np.all(out[:5] == loc[4]) and np.all(out[12:] == loc[12])


def test_dense_prior_only_inside_the_skull():
    yy, xx = np.mgrid[:64, :64] - 31.5
    r = np.hypot(yy, xx)
    hu = np.full((64, 64), -1024, np.float32)
    hu[r < 30] = 1000  # skull
    hu[r < 26] = 30  # brain
    hu[(yy - 5) ** 2 + xx**2 < 16] = 70  # a bleed
    hu[0:3, 0:3] = 70  # dense but outside the head
    prior = pp.dense_prior(hu)
    assert prior[36, 32] == 1 and prior[1, 1] == 0 and prior[32, 20] == 0
    assert prior.dtype == np.float32


@pytest.mark.parametrize("context", [0, 1, 2])
def test_with_prior_appends_a_channel(context):
    x = np.zeros((2, 8, 8, 2 * context + 1), np.float32)
    assert pp.with_prior(x, context).shape == (2, 8, 8, 2 * context + 2)
