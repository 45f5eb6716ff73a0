"""Tests for HERS superpixels (hierarchy, cuts, registry method) and pixel affinities."""

import itertools

import numpy as np
import pytest
import torch
from skimage.measure import label as cc_label

import pointseg.superpixels.hers as hers_module
from pointseg.superpixels import compute_superpixels, list_superpixel_methods
from pointseg.superpixels.affinity import (
    AFFINITY_FLOOR,
    SIGMA_FLOOR,
    AffinityModel,
    color_affinity,
    learned_affinity,
    load_affinity_model,
)
from pointseg.superpixels.hers import HersHierarchy, build_hers_hierarchy, clear_hers_cache


def n_regions(labels: np.ndarray) -> int:
    return int(np.unique(labels).size)


def assert_connected(labels: np.ndarray) -> None:
    """Every label is one 4-connected region."""
    for lab in np.unique(labels):
        assert cc_label(labels == lab, connectivity=1).max() == 1, f"label {lab} is split"


def assert_nested(fine: np.ndarray, coarse: np.ndarray) -> None:
    """Every region of ``fine`` lies inside exactly one region of ``coarse``."""
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()], axis=1), axis=0)
    assert np.unique(pairs[:, 0]).size == pairs.shape[0]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_hers_cache()
    yield
    clear_hers_cache()


# ------------------------------------------------------------------------- hierarchy


@pytest.mark.parametrize(
    "options",
    [{}, {"merge_fraction": 0.5}, {"loop_update": True}, {"balance": 0.0}],
    ids=["default", "fraction0.5", "loop_update", "no_balance"],
)
def test_cuts_are_nested_exact_and_connected(options, textured_image):
    h = build_hers_hierarchy(textured_image(64, 64), **options)
    assert isinstance(h, HersHierarchy)
    assert h.n_pixels == 64 * 64 and h.max_segments == 64 * 64 and h.min_segments == 1
    counts = [100, 50, 20, 5]
    cuts = h.cuts(counts)
    for n, lab in zip(counts, cuts, strict=True):
        assert lab.shape == (64, 64) and lab.dtype == np.int32
        assert n_regions(lab) == n and lab.min() == 0 and lab.max() == n - 1
        assert_connected(lab)
    assert h.last_n_segments == 5  # the last cut
    for fine, coarse in itertools.combinations(cuts, 2):  # counts decrease along the list
        assert_nested(fine, coarse)


def test_exact_counts_over_the_whole_range(textured_image):
    h = build_hers_hierarchy(textured_image(32, 32))
    for n in [1, 2, 3, 17, 100, 511, 1023, 1024]:
        lab = h.cut(n)
        assert n_regions(lab) == n and lab.max() == n - 1
        assert h.last_n_segments == n
    assert n_regions(h.cut(5000)) == 1024  # clipped to the pixel count
    assert h.last_n_segments == 1024
    with pytest.raises(ValueError, match="n_segments"):
        h.cut(0)


@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_region_image_boundary(bands, seed, two_region_image):
    img = two_region_image(bands=bands, seed=seed)
    h = build_hers_hierarchy(img)
    two = h.cut(2)
    assert np.unique(two[:, :32]).size == 1 and np.unique(two[:, 32:]).size == 1
    assert two[0, 0] != two[0, 63]
    twenty = h.cut(20)
    left, right = set(np.unique(twenty[:, :32])), set(np.unique(twenty[:, 32:]))
    assert not left & right, "a region straddles the boundary"


def test_deterministic(textured_image):
    img = textured_image(64, 64, seed=3)
    a, b = build_hers_hierarchy(img), build_hers_hierarchy(img.copy())
    np.testing.assert_array_equal(a.merges, b.merges)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.junction, b.junction)
    for n in (7, 60, 300):
        np.testing.assert_array_equal(a.cut(n), b.cut(n))


def test_merges_are_grid_edges_forming_a_spanning_tree(textured_image):
    h = build_hers_hierarchy(textured_image(16, 16))
    p, q = h.merges[:, 0].astype(int), h.merges[:, 1].astype(int)
    assert h.n_merges == 255
    diff = q - p
    assert set(np.unique(diff)) <= {1, 16}
    assert np.all((diff != 1) | (p % 16 != 15))  # no wrap-around horizontal edges
    assert np.unique(np.sort(h.order)).size == 256


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (1, 7), (7, 1)])
def test_tiny_images(shape):
    img = np.random.default_rng(0).random(shape)
    h = build_hers_hierarchy(img)
    n_pix = shape[0] * shape[1]
    assert h.max_segments == n_pix and h.min_segments == 1
    for n in range(1, n_pix + 1):
        lab = h.cut(n)
        assert lab.shape == shape and n_regions(lab) == n
        assert_connected(lab)
    assert n_regions(h.cut(n_pix + 3)) == n_pix


def test_one_colour_image_exact_and_even():
    img = np.full((64, 64, 3), 0.5)
    h = build_hers_hierarchy(img)
    for n in [1, 2, 7, 50, 300]:
        lab = h.cut(n)
        assert n_regions(lab) == n
        assert_connected(lab)
    sizes = np.bincount(h.cut(2).ravel())
    assert sizes.min() >= 0.1 * 64 * 64, sizes
    sizes = np.bincount(h.cut(50).ravel())
    assert sizes.max() <= 6 * (64 * 64 / 50), sizes
    # uint8 one-colour input through the registry
    lab = compute_superpixels(np.full((20, 30), 128, np.uint8), method="hers", n_segments=12)
    assert n_regions(lab) == 12


def test_nodata_never_merged_with_valid_pixels(textured_image):
    img = textured_image(32, 32, bands=2, seed=5)
    img[8:14, 8:14, 0] = np.nan  # NaN in one band is enough
    img[:, 20, :] = np.nan  # a full nodata column splits the valid pixels in two
    img[30:, 0:2, :] = np.nan
    nodata = np.isnan(img).any(axis=2)
    h = build_hers_hierarchy(img)
    n_nodata_cc = cc_label(nodata, connectivity=1).max()
    n_valid_cc = cc_label(~nodata, connectivity=1).max()
    assert (n_nodata_cc, n_valid_cc) == (3, 2)
    assert h.min_segments == n_nodata_cc + n_valid_cc
    assert h.max_segments == int((~nodata).sum()) + n_nodata_cc
    for n in [1, 5, 40, 300, h.max_segments]:
        lab = h.cut(n)
        assert n_regions(lab) == h.achievable(n) == h.last_n_segments
        assert_connected(lab)
        for r in np.unique(lab):
            inside = nodata[lab == r]
            assert inside.all() or not inside.any(), "nodata merged with valid pixels"
        # each nodata component is exactly one region
        assert np.unique(lab[nodata]).size == n_nodata_cc
    assert h.cut(1).max() + 1 == 5


def test_all_nodata_image():
    h = build_hers_hierarchy(np.full((4, 5), np.nan))
    assert h.min_segments == h.max_segments == 1
    assert n_regions(h.cut(3)) == 1


def test_custom_affinity_pair_and_missing_edges():
    hor = np.ones((10, 11))
    ver = np.ones((9, 12))
    hor[:, 5] = 0.0  # weakest link between columns 5 and 6
    h = build_hers_hierarchy(np.zeros((10, 12)), affinity=(hor, ver))
    two = h.cut(2)
    assert np.unique(two[:, :6]).size == 1 and two[0, 0] != two[0, 11]
    hor[:, 5] = np.nan  # missing edges: the halves can never merge
    h = build_hers_hierarchy(np.zeros((10, 12)), affinity=(hor, ver))
    assert h.min_segments == 2
    with pytest.raises(ValueError, match="shapes"):
        build_hers_hierarchy(np.zeros((10, 12)), affinity=(ver, hor))
    with pytest.raises(ValueError, match=">= 0"):
        build_hers_hierarchy(np.zeros((10, 12)), affinity=(-hor, ver))
    with pytest.raises(ValueError, match="unknown affinity"):
        build_hers_hierarchy(np.zeros((10, 12)), affinity="dal")


def test_edge_map_separates_regions():
    img = np.full((16, 16), 0.5)
    edge = np.zeros((16, 16))
    edge[:, 8] = 1.0  # a full-strength edge: affinities across column 8 become 0
    h = build_hers_hierarchy(img, edge_map=edge)
    three = h.cut(3)
    assert not set(np.unique(three[:, :8])) & set(np.unique(three[:, 9:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"balance": -1.0}, "balance"),
        ({"balance": float("nan")}, "balance"),
        ({"merge_fraction": 0.0}, "merge_fraction"),
        ({"merge_fraction": 1.5}, "merge_fraction"),
        ({"sigma": 0.0}, "sigma"),
    ],
)
def test_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_hers_hierarchy(np.zeros((4, 4)), **kwargs)


# ------------------------------------------------------------------- registry method


def test_registered_and_multiband(textured_image):
    assert "hers" in list_superpixel_methods()
    rng = np.random.default_rng(1)
    for bands in (1, 5):
        img = textured_image(48, 40, bands=bands, seed=bands)
        if bands == 1:
            img = img[..., 0]
        lab = compute_superpixels(img, method="hers", n_segments=50)
        assert lab.shape == (48, 40) and lab.dtype == np.int32
        assert lab.min() == 0 and lab.max() == 49 and n_regions(lab) == 50
        assert_connected(lab)
    # unscaled float input (min-max scaled by the registry) works too
    lab = compute_superpixels(rng.normal(100, 20, (20, 20, 2)), method="hers", n_segments=9)
    assert n_regions(lab) == 9


def test_lru_cache_builds_once(monkeypatch, textured_image):
    calls = []
    real = hers_module.build_hers_hierarchy

    def counting(image, **options):
        calls.append(options)
        return real(image, **options)

    monkeypatch.setattr(hers_module, "build_hers_hierarchy", counting)
    img = textured_image(64, 64, seed=7)
    labs = [compute_superpixels(img, method="hers", n_segments=n) for n in (100, 200, 300)]
    assert len(calls) == 1
    assert [n_regions(lab) for lab in labs] == [100, 200, 300]
    compute_superpixels(img.copy(), method="hers", n_segments=10)  # same bytes: cached
    assert len(calls) == 1
    compute_superpixels(img, method="hers", n_segments=10, balance=0.5)  # other options
    assert len(calls) == 2
    compute_superpixels(img[:32], method="hers", n_segments=10)  # other image
    assert len(calls) == 3
    compute_superpixels(img, method="hers", n_segments=10, cache=False)
    assert len(calls) == 4
    for seed in range(10, 10 + hers_module.CACHE_SIZE):  # evict the first image
        compute_superpixels(textured_image(16, 16, seed=seed), method="hers", n_segments=4)
    compute_superpixels(img, method="hers", n_segments=10)
    assert len(calls) == 5 + hers_module.CACHE_SIZE


# ------------------------------------------------------------------------ affinities


def test_color_affinity_shape_range_and_sigma(textured_image):
    img = textured_image(20, 30, bands=4, seed=2)
    hor, ver = color_affinity(img)
    assert hor.shape == (20, 29) and ver.shape == (19, 30)
    assert hor.dtype == ver.dtype == np.float64
    for a in (hor, ver):
        assert a.min() >= AFFINITY_FLOOR and a.max() <= 1.0
    # sigma heuristic: median of the non-zero neighbour distances over all bands
    dh = np.sqrt(((img[:, 1:] - img[:, :-1]) ** 2).sum(-1))
    dv = np.sqrt(((img[1:] - img[:-1]) ** 2).sum(-1))
    d = np.concatenate([dh.ravel(), dv.ravel()])
    sigma = np.median(d[d > 0])
    np.testing.assert_allclose(hor, np.exp(-(dh**2) / (2 * sigma**2)), rtol=1e-12)
    np.testing.assert_allclose(ver, np.exp(-(dv**2) / (2 * sigma**2)), rtol=1e-12)
    # an explicit sigma
    hor2, _ = color_affinity(img, sigma=0.1)
    np.testing.assert_allclose(hor2, np.exp(-(dh**2) / 0.02), rtol=1e-12)
    # identical neighbours have affinity 1, very different ones a tiny positive value
    step = np.zeros((3, 4))
    step[:, 2:] = 1.0
    h_step, v_step = color_affinity(step, sigma=0.01)
    assert (v_step == 1.0).all() and (h_step[:, [0, 2]] == 1.0).all()
    assert (h_step[:, 1] > 0).all() and (h_step[:, 1] < 1e-100).all()
    with pytest.raises(ValueError, match="sigma"):
        color_affinity(img, sigma=-1.0)


def test_color_affinity_one_colour_and_nan():
    hor, ver = color_affinity(np.full((5, 6, 3), 0.3))
    assert (hor == 1.0).all() and (ver == 1.0).all()
    assert SIGMA_FLOOR > 0
    img = np.random.default_rng(0).random((6, 7, 2))
    img[2, 3, 1] = np.nan
    hor, ver = color_affinity(img)
    assert np.isfinite(hor).all() and np.isfinite(ver).all()
    assert hor[2, 2] == hor[2, 3] == ver[1, 3] == ver[2, 3] == 0.0
    touching = np.zeros_like(hor, bool)
    touching[2, 2:4] = True
    assert (hor[~touching] > 0).all()
    with pytest.raises(ValueError, match="infinite"):
        color_affinity(np.full((3, 3), np.inf))


def test_color_affinity_edge_map():
    img = np.full((4, 5), 0.5)
    edge = np.zeros((4, 5))
    edge[:, 2] = 0.75
    hor, ver = color_affinity(img, edge_map=edge)
    np.testing.assert_allclose(hor[:, 1:3], 0.25)
    np.testing.assert_allclose(hor[:, [0, 3]], 1.0)
    np.testing.assert_allclose(ver[:, 2], 0.25)
    with pytest.raises(ValueError, match="shape"):
        color_affinity(img, edge_map=np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        color_affinity(img, edge_map=edge * 2)


class ConstantAffinity(torch.nn.Module):
    """Tiny model: right-neighbour affinity 0.7, bottom-neighbour affinity 0.3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = torch.empty(n, 2, h, w, dtype=x.dtype)
        out[:, 0] = 0.7
        out[:, 1] = 0.3
        return out


class WrongShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


class OutOfRange(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((1, 2, x.shape[2], x.shape[3]), 2.0)


def test_learned_affinity_contract():
    model = ConstantAffinity().train()
    assert isinstance(model, AffinityModel)
    img = np.random.default_rng(0).random((6, 8, 3))
    img[0, 0, 0] = np.nan
    hor, ver = learned_affinity(img, model)
    assert model.training  # mode restored
    assert hor.shape == (6, 7) and ver.shape == (5, 8) and hor.dtype == np.float64
    np.testing.assert_allclose(hor[1:], 0.7, rtol=1e-6)
    np.testing.assert_allclose(ver[1:], 0.3, rtol=1e-6)
    assert hor[0, 0] == 0.0 and ver[0, 0] == 0.0  # the nodata pixel's links
    with pytest.raises(ValueError, match=r"shape \(1, 1, 6, 8\)"):
        learned_affinity(img, WrongShape())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        learned_affinity(img, OutOfRange())
    # a learned model drives the hierarchy: horizontal links are stronger
    h = build_hers_hierarchy(np.zeros((8, 8)), affinity=ConstantAffinity())
    assert n_regions(h.cut(8)) == 8


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")
def test_load_affinity_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_affinity_model(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="local"):
        load_affinity_model("https://example.com/dal.pt")
    path = tmp_path / "constant.pt"
    torch.jit.save(torch.jit.script(ConstantAffinity()), str(path))
    model = load_affinity_model(path)
    hor, ver = learned_affinity(np.zeros((4, 5)), model)
    np.testing.assert_allclose(hor, 0.7, rtol=1e-6)
    np.testing.assert_allclose(ver, 0.3, rtol=1e-6)
