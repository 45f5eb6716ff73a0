"""Tests for the affinity-aware regularisers (dense-CRF loss) and their registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pointseg.losses.regularisers import (
    DenseCRFLoss,
    check_regulariser_options,
    get_regulariser,
    list_regularisers,
    register_regulariser,
)


def _softmax2(a: float, b: float) -> tuple[float, float]:
    """Softmax of two logits, by hand."""
    ea, eb = math.exp(a), math.exp(b)
    return ea / (ea + eb), eb / (ea + eb)


def _dot(p: tuple[float, float], q: tuple[float, float]) -> float:
    return p[0] * q[0] + p[1] * q[1]


def _row(values: list[list[float]]) -> torch.Tensor:
    """(C, W) nested list -> tensor of shape (1, C, 1, W), float64."""
    return torch.tensor(values, dtype=torch.float64)[None, :, None, :]


def _brute_force(
    logits: torch.Tensor,
    image: torch.Tensor,
    valid: torch.Tensor | None,
    *,
    sigma_rgb: float,
    sigma_xy: float,
    radius: int,
) -> float:
    """The loss at full resolution by explicit loops over all ordered pixel pairs."""
    probs = torch.softmax(logits.double(), dim=1).tolist()
    img = image.double().tolist()
    b, k, h, w = logits.shape
    ok = [[[True] * w for _ in range(h)] for _ in range(b)] if valid is None else valid.tolist()
    total, n = 0.0, 0
    for bi in range(b):
        for yi in range(h):
            for xi in range(w):
                if not ok[bi][yi][xi]:
                    continue
                n += 1
                for yj in range(h):
                    for xj in range(w):
                        if (yi, xi) == (yj, xj) or not ok[bi][yj][xj]:
                            continue
                        if max(abs(yi - yj), abs(xi - xj)) > radius:
                            continue
                        d_xy = (yi - yj) ** 2 + (xi - xj) ** 2
                        d_rgb = sum(
                            (img[bi][c][yi][xi] - img[bi][c][yj][xj]) ** 2
                            for c in range(len(img[bi]))
                        )
                        weight = math.exp(-d_xy / (2 * sigma_xy**2) - d_rgb / (2 * sigma_rgb**2))
                        agree = sum(probs[bi][c][yi][xi] * probs[bi][c][yj][xj] for c in range(k))
                        total += weight * (1 - agree)
    return total / max(n, 1)


# ------------------------------------------------------------------------ registry


def test_registry_lists_and_builds_crf() -> None:
    names = list_regularisers()
    assert names == sorted(names)
    assert "crf" in names
    reg = get_regulariser("crf", radius=2, downsample=1, sigma_rgb=0.2, sigma_xy=3.0)
    assert isinstance(reg, DenseCRFLoss)
    assert (reg.radius, reg.downsample, reg.sigma_rgb, reg.sigma_xy) == (2, 1, 0.2, 3.0)
    defaults = get_regulariser("crf")
    assert (defaults.radius, defaults.downsample) == (5, 2)
    assert (defaults.sigma_rgb, defaults.sigma_xy) == (0.35, 6.0)
    assert "radius=2" in repr(reg)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(
        ValueError, match=r"unknown regulariser 'dense'; available regularisers: .*crf"
    ):
        get_regulariser("dense")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown option\(s\) \['sigma'\] for regulariser 'crf'; "
        r"valid options: downsample, radius, sigma_rgb, sigma_xy",
    ):
        get_regulariser("crf", sigma=1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sigma_rgb": 0.0}, r"sigma_rgb must be a positive finite number, got 0.0"),
        ({"sigma_rgb": -1.0}, r"sigma_rgb must be a positive finite number"),
        ({"sigma_rgb": float("nan")}, r"sigma_rgb must be a positive finite number"),
        ({"sigma_rgb": "0.3"}, r"sigma_rgb must be a positive finite number, got '0.3'"),
        ({"sigma_xy": float("inf")}, r"sigma_xy must be a positive finite number"),
        ({"sigma_xy": True}, r"sigma_xy must be a positive finite number, got True"),
        ({"radius": 0}, r"radius must be an integer >= 1, got 0"),
        ({"radius": 2.0}, r"radius must be an integer >= 1, got 2.0"),
        ({"downsample": 0}, r"downsample must be an integer >= 1, got 0"),
        ({"downsample": True}, r"downsample must be an integer >= 1, got True"),
    ],
)
def test_bad_option_values(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_regulariser("crf", **options)
    with pytest.raises(ValueError, match=message):
        check_regulariser_options("crf", options)


def test_check_options_accepts_good_options() -> None:
    check_regulariser_options("crf", {"radius": 3, "downsample": 1})
    with pytest.raises(ValueError, match="available regularisers"):
        check_regulariser_options("nope", {})


def test_register_rejects_duplicates_and_non_modules() -> None:
    class Other(nn.Module):
        pass

    with pytest.raises(ValueError, match=r"'crf' is already registered \(DenseCRFLoss\)"):
        register_regulariser("crf")(Other)
    with pytest.raises(ValueError, match="expects a torch.nn.Module subclass"):
        register_regulariser("not_a_module")(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="non-empty string"):
        register_regulariser("")
    assert "not_a_module" not in list_regularisers()
    # re-registering the same class under its own name is allowed (module reloads)
    assert register_regulariser("crf")(DenseCRFLoss) is DenseCRFLoss


# ---------------------------------------------------------------- hand-computed values


def test_hand_computed_1x3() -> None:
    # one row of three pixels, one band, two classes; radius 1: pairs (0,1) and (1,2)
    logits = _row([[1.0, 0.0, -1.0], [0.0, 0.5, 1.0]])
    image = _row([[0.0, 0.1, 1.0]])
    reg = get_regulariser("crf", sigma_rgb=0.5, sigma_xy=2.0, radius=1, downsample=1)
    p0, p1, p2 = _softmax2(1.0, 0.0), _softmax2(0.0, 0.5), _softmax2(-1.0, 1.0)
    w01 = math.exp(-1 / (2 * 2.0**2) - (0.1 - 0.0) ** 2 / (2 * 0.5**2))
    w12 = math.exp(-1 / (2 * 2.0**2) - (1.0 - 0.1) ** 2 / (2 * 0.5**2))
    # ordered pairs: (0,1), (1,0), (1,2), (2,1); three valid pixels
    expected = (2 * w01 * (1 - _dot(p0, p1)) + 2 * w12 * (1 - _dot(p1, p2))) / 3
    loss = reg(logits, image)
    assert loss.ndim == 0 and loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_hand_computed_2x2_with_diagonals_and_two_bands() -> None:
    # pixels a b / c d; logits of class 0 and 1 per pixel, image with two bands
    la, lb, lc, ld = (0.3, -0.2), (1.5, 0.0), (-0.4, 0.9), (0.0, 0.0)
    logits = torch.tensor(
        [[[la[0], lb[0]], [lc[0], ld[0]]], [[la[1], lb[1]], [lc[1], ld[1]]]],
        dtype=torch.float64,
    )[None]
    xa, xb, xc, xd = (0.0, 1.0), (0.2, 0.8), (1.0, 0.0), (0.5, 0.5)
    image = torch.tensor(
        [[[xa[0], xb[0]], [xc[0], xd[0]]], [[xa[1], xb[1]], [xc[1], xd[1]]]],
        dtype=torch.float64,
    )[None]
    s_rgb, s_xy = 0.7, 1.5
    reg = get_regulariser("crf", sigma_rgb=s_rgb, sigma_xy=s_xy, radius=1, downsample=1)
    pa, pb, pc, pd = (_softmax2(*v) for v in (la, lb, lc, ld))

    def term(p, q, x, y, d2):  # type: ignore[no-untyped-def]
        col = (x[0] - y[0]) ** 2 + (x[1] - y[1]) ** 2
        return math.exp(-d2 / (2 * s_xy**2) - col / (2 * s_rgb**2)) * (1 - _dot(p, q))

    pairs = (
        term(pa, pb, xa, xb, 1)  # horizontal
        + term(pc, pd, xc, xd, 1)
        + term(pa, pc, xa, xc, 1)  # vertical
        + term(pb, pd, xb, xd, 1)
        + term(pa, pd, xa, xd, 2)  # diagonals
        + term(pb, pc, xb, xc, 2)
    )
    expected = 2 * pairs / 4
    assert reg(logits, image).item() == pytest.approx(expected, rel=1e-12)


def test_valid_mask_excludes_pairs_and_pixels() -> None:
    logits = _row([[1.0, 0.0, -1.0], [0.0, 0.5, 1.0]])
    image = _row([[0.0, 0.1, 1.0]])
    reg = get_regulariser("crf", sigma_rgb=0.5, sigma_xy=2.0, radius=1, downsample=1)
    p0, p1 = _softmax2(1.0, 0.0), _softmax2(0.0, 0.5)
    w01 = math.exp(-1 / (2 * 2.0**2) - 0.1**2 / (2 * 0.5**2))
    # pixel 2 is padding: only (0,1) and (1,0) remain, over two valid pixels
    valid = torch.tensor([[[True, True, False]]])
    assert reg(logits, image, valid).item() == pytest.approx(
        2 * w01 * (1 - _dot(p0, p1)) / 2, rel=1e-12
    )
    # pixel 1 is padding: no pair is left (0 and 2 are two apart, outside radius 1)
    valid = torch.tensor([[[True, False, True]]])
    assert reg(logits, image, valid).item() == 0.0
    # an all-padding second image adds no pair and no pixel to the mean
    full = reg(logits, image).item()
    batch = reg(
        logits.repeat(2, 1, 1, 1),
        image.repeat(2, 1, 1, 1),
        torch.tensor([[[True, True, True]], [[False, False, False]]]),
    )
    assert batch.item() == pytest.approx(full, rel=1e-12)
    # no valid pixel at all: exactly 0, not NaN
    assert reg(logits, image, torch.zeros(1, 1, 3, dtype=torch.bool)).item() == 0.0


def test_hand_computed_downsample_pools_and_scales_positions() -> None:
    # 2x3 image, downsample 2 -> a 1x2 grid: block {cols 0,1} and the partial block {col 2};
    # pixel (0, 1) is padding, so the left block averages three pixels
    l0 = [[0.0, 9.0, 1.0], [2.0, 0.0, -1.0]]  # class-0 logits, rows 0 and 1
    l1 = [[1.0, -9.0, 0.0], [0.0, 1.0, 1.0]]  # class-1 logits
    x = [[0.1, 50.0, 0.9], [0.3, 0.2, 0.7]]  # one band
    logits = torch.tensor([l0, l1], dtype=torch.float64)[None]
    image = torch.tensor([x], dtype=torch.float64)[None]
    valid = torch.tensor([[[True, False, True], [True, True, True]]])
    reg = get_regulariser("crf", sigma_rgb=0.5, sigma_xy=3.0, radius=1, downsample=2)

    left = [_softmax2(l0[0][0], l1[0][0]), _softmax2(l0[1][0], l1[1][0])]
    left.append(_softmax2(l0[1][1], l1[1][1]))
    right = [_softmax2(l0[0][2], l1[0][2]), _softmax2(l0[1][2], l1[1][2])]
    p_left = tuple(sum(p[c] for p in left) / 3 for c in range(2))
    p_right = tuple(sum(p[c] for p in right) / 2 for c in range(2))
    x_left = (0.1 + 0.3 + 0.2) / 3
    x_right = (0.9 + 0.7) / 2
    # the two pooled pixels are 2 input pixels apart
    w = math.exp(-(2**2) / (2 * 3.0**2) - (x_left - x_right) ** 2 / (2 * 0.5**2))
    expected = 2 * w * (1 - _dot(p_left, p_right)) / 2
    assert reg(logits, image, valid).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("with_valid", [False, True])
def test_matches_brute_force_over_all_pairs(with_valid: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    image = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64)
    valid = torch.rand(2, 5, 6, generator=gen) > 0.3 if with_valid else None
    options = {"sigma_rgb": 0.8, "sigma_xy": 2.5, "radius": 2}
    reg = get_regulariser("crf", downsample=1, **options)
    expected = _brute_force(logits, image, valid, **options)  # type: ignore[arg-type]
    assert reg(logits, image, valid).item() == pytest.approx(expected, rel=1e-10)


def test_radius_larger_than_image() -> None:
    logits = _row([[1.0, 0.0], [0.0, 0.5]])
    image = _row([[0.0, 0.4]])
    reg = get_regulariser("crf", sigma_rgb=0.5, sigma_xy=2.0, radius=7, downsample=1)
    p0, p1 = _softmax2(1.0, 0.0), _softmax2(0.0, 0.5)
    w = math.exp(-1 / 8 - 0.16 / 0.5)
    assert reg(logits, image).item() == pytest.approx(2 * w * (1 - _dot(p0, p1)) / 2)
    # a single pixel has no pair: 0, still connected to the graph
    single = torch.zeros(1, 2, 1, 1, requires_grad=True)
    loss = reg(single, torch.zeros(1, 3, 1, 1))
    loss.backward()
    assert loss.item() == 0.0 and single.grad is not None


# ----------------------------------------------------------------------- properties


@pytest.mark.parametrize("downsample", [1, 2])
def test_zero_for_constant_one_hot(downsample: int) -> None:
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, 12, 10, generator=gen)
    logits = torch.full((2, 4, 12, 10), -100.0)
    logits[:, 2] = 100.0
    reg = get_regulariser("crf", radius=3, downsample=downsample)
    assert reg(logits, image).item() == 0.0
    valid = torch.rand(2, 12, 10, generator=gen) > 0.5
    assert reg(logits, image, valid).item() == 0.0
    # a uniform prediction does pay: positive
    assert reg(torch.zeros(2, 4, 12, 10), image).item() > 0.1


@pytest.mark.parametrize("downsample", [1, 2])
def test_cut_along_colour_edge_is_cheaper(downsample: int) -> None:
    # left half (cols 0-19) colour 0, right half colour 2 (z-score units), all bands; both
    # cuts are further than the window reach (radius 5 x downsample 2) from the borders
    image = torch.zeros(1, 3, 16, 40)
    image[..., 20:] = 2.0
    along = torch.full((1, 2, 16, 40), -10.0)
    along[:, 0, :, :20] = 10.0
    along[:, 1, :, 20:] = 10.0
    across = torch.full((1, 2, 16, 40), -10.0)  # same cut length, inside the flat right half
    across[:, 0, :, :30] = 10.0
    across[:, 1, :, 30:] = 10.0
    reg = get_regulariser("crf", downsample=downsample)
    loss_along, loss_across = reg(along, image).item(), reg(across, image).item()
    assert loss_across > 0.1
    assert loss_along < 1e-3 * loss_across
    # with a colour bandwidth far above the edge contrast the two cuts cost about the same
    flat = get_regulariser("crf", sigma_rgb=1e3, downsample=downsample)
    assert flat(along, image).item() == pytest.approx(flat(across, image).item(), rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_flow_batched(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 17, 14, generator=gen).to(dtype).requires_grad_()
    image = torch.randn(3, 3, 17, 14, generator=gen).to(dtype).requires_grad_()
    valid = torch.ones(3, 17, 14, dtype=torch.bool)
    valid[1, :, 10:] = False  # padded image in the batch
    loss = get_regulariser("crf")(logits, image, valid)
    assert loss.dtype == dtype
    loss.backward()
    assert logits.grad is not None and logits.grad.dtype == dtype
    assert bool(torch.isfinite(logits.grad).all())
    assert logits.grad.abs().sum().item() > 0
    # padding pixels get no gradient; the image is a constant of the kernel
    assert logits.grad[1, :, :, 10:].abs().max().item() == 0.0
    assert image.grad is None


def test_float32_matches_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 20, 24, generator=gen, dtype=torch.float64)
    image = torch.randn(2, 3, 20, 24, generator=gen, dtype=torch.float64)
    reg = get_regulariser("crf", downsample=2)
    ref = reg(logits, image)
    low = reg(logits.float(), image.float())
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=1e-5)
    # mixed dtypes: half-precision logits are computed in float32
    assert reg(logits.half(), image.float()).dtype == torch.float32


def test_gradcheck_small() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    image = torch.randn(2, 2, 5, 7, generator=gen, dtype=torch.float64)
    valid = torch.rand(2, 5, 7, generator=gen) > 0.2
    reg = get_regulariser("crf", sigma_rgb=1.0, sigma_xy=2.0, radius=2, downsample=2)
    assert torch.autograd.gradcheck(lambda t: reg(t, image, valid), (logits,), fast_mode=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 6, 33, 40, generator=gen)
    image = torch.randn(2, 3, 33, 40, generator=gen)
    valid = torch.rand(2, 33, 40, generator=gen) > 0.1
    reg = get_regulariser("crf")
    cpu = reg(logits, image, valid)
    gpu_logits = logits.cuda().requires_grad_()
    gpu = reg(gpu_logits, image.cuda(), valid.cuda())
    assert gpu.device.type == "cuda"
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-4)
    gpu.backward()
    assert gpu_logits.grad is not None and bool(torch.isfinite(gpu_logits.grad).all())


# --------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("logits", "image", "valid", "message"),
    [
        (torch.zeros(2, 4, 4), torch.zeros(1, 3, 4, 4), None, r"logits must be a float tensor"),
        (
            torch.zeros(1, 2, 4, 4, dtype=torch.long),
            torch.zeros(1, 3, 4, 4),
            None,
            r"logits must be a float tensor of shape \(B, K, H, W\).*torch.int64",
        ),
        (torch.zeros(1, 2, 4, 4), torch.zeros(3, 4, 4), None, r"image must be a float tensor"),
        (
            torch.zeros(1, 2, 4, 4),
            torch.zeros(1, 3, 8, 8),
            None,
            r"image shape \(1, 3, 8, 8\) does not match logits shape \(1, 2, 4, 4\)",
        ),
        (
            torch.zeros(2, 2, 4, 4),
            torch.zeros(1, 3, 4, 4),
            None,
            r"batch size and \(H, W\) must be equal",
        ),
        (
            torch.zeros(1, 2, 4, 4),
            torch.zeros(1, 3, 4, 4),
            torch.ones(1, 4, 4, dtype=torch.uint8),
            r"valid must be None or a bool tensor.*torch.uint8",
        ),
        (
            torch.zeros(1, 2, 4, 4),
            torch.zeros(1, 3, 4, 4),
            torch.ones(1, 4, 5, dtype=torch.bool),
            r"valid shape \(1, 4, 5\) does not match.*expected \(1, 4, 4\)",
        ),
        (torch.zeros(1, 2, 4, 4), "image", None, r"must be torch tensors, got Tensor and str"),
    ],
)
def test_bad_inputs_raise(
    logits: torch.Tensor, image: torch.Tensor, valid: torch.Tensor | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        get_regulariser("crf")(logits, image, valid)
