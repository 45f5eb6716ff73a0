"""Tests for the point-supervision losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pointseg.constants import IGNORE_INDEX
from pointseg.losses import (
    ClassWeightedMaskedMSE,
    PartialCrossEntropy,
    get_loss,
    list_losses,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
IGN = IGNORE_INDEX


def _logits(rows: list[list[float]]) -> torch.Tensor:
    """(C, W) nested list -> logits of shape (1, C, 1, W)."""
    return torch.tensor(rows, dtype=torch.float32)[None, :, None, :]


def _target(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)[None, None, :]


def test_registry() -> None:
    assert list_losses() == sorted(list_losses())
    assert {"masked_mse", "partial_ce"} <= set(list_losses())
    assert isinstance(get_loss("masked_mse"), ClassWeightedMaskedMSE)
    assert isinstance(get_loss("partial_ce", class_weights="balanced"), PartialCrossEntropy)


def test_unknown_loss_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"masked_mse.*partial_ce"):
        get_loss("dice")


@pytest.mark.parametrize("device", DEVICES)
def test_masked_mse_hand_computed_raw(device: str) -> None:
    # B=1, C=2, H=1, W=3; third pixel ignored.
    logits = _logits([[0.2, 0.5, 3.0], [0.7, -0.1, -2.0]]).to(device)
    target = _target([0, 1, IGN]).to(device)
    # err0 = (0.2-1)^2 + 0.7^2 = 1.13; err1 = 0.5^2 + (-0.1-1)^2 = 1.46
    # N = 2, n_0 = n_1 = 1 -> w = 2; L = (2*1.13 + 2*1.46) / 2 = 2.59
    loss = ClassWeightedMaskedMSE(activation="none")(logits, target)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(2.59, rel=1e-6)


def test_masked_mse_hand_computed_unequal_counts() -> None:
    logits = _logits([[1.0, 0.0, 0.5, 9.0], [0.0, 0.5, 0.5, 9.0]])
    target = _target([0, 0, 1, IGN])
    # N = 3, n_0 = 2, n_1 = 1 -> w_0 = 1.5, w_1 = 3
    # errs: 0, 1 + 0.25 = 1.25, 0.25 + 0.25 = 0.5
    expected = (1.5 * 0.0 + 1.5 * 1.25 + 3.0 * 0.5) / 3
    loss = ClassWeightedMaskedMSE(activation="none")(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_masked_mse_hand_computed_softmax() -> None:
    logits = _logits([[1.0, 0.0, 5.0], [-1.0, 2.0, 5.0]])
    target = _target([0, 1, IGN])
    p0 = math.exp(1.0) / (math.exp(1.0) + math.exp(-1.0))  # pixel 0, score of class 0
    p1 = math.exp(2.0) / (math.exp(0.0) + math.exp(2.0))  # pixel 1, score of class 1
    err0 = (p0 - 1) ** 2 + (1 - p0) ** 2
    err1 = (1 - p1) ** 2 + (p1 - 1) ** 2
    expected = (2 * err0 + 2 * err1) / 2
    loss = get_loss("masked_mse")(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_masked_mse_sigmoid() -> None:
    logits = _logits([[0.0], [1.0]])
    target = _target([1])
    s1 = 1 / (1 + math.exp(-1.0))
    expected = 0.5**2 + (s1 - 1) ** 2  # N = n_1 = 1 -> w = 1
    loss = ClassWeightedMaskedMSE(activation="sigmoid")(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["masked_mse", "partial_ce"])
def test_absent_class_gives_finite_loss(device: str, name: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 4, device=device, requires_grad=True)
    target = torch.full((2, 4, 4), IGN, dtype=torch.long, device=device)
    target[0, 0, 0], target[1, 2, 3] = 1, 3  # classes 0, 2, 4 absent
    for kwargs in ({}, {"class_weights": "balanced"}) if name == "partial_ce" else ({},):
        loss = get_loss(name, **kwargs)(logits, target)
        assert torch.isfinite(loss)
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        logits.grad = None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("masked_mse", {}),
        ("masked_mse", {"activation": "none"}),
        ("partial_ce", {}),
        ("partial_ce", {"class_weights": "balanced"}),
        ("partial_ce", {"class_weights": [1.0, 2.0, 3.0]}),
    ],
)
def test_all_ignored_batch_is_zero_with_graph(device: str, name: str, kwargs: dict) -> None:
    logits = torch.randn(2, 3, 4, 4, device=device, requires_grad=True)
    target = torch.full((2, 4, 4), IGN, dtype=torch.long, device=device)
    loss = get_loss(name, **kwargs).to(device)(logits, target)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert logits.grad is not None
    assert torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("masked_mse", {}), ("partial_ce", {}), ("partial_ce", {"class_weights": "balanced"})],
)
def test_invariant_to_extra_ignored_pixels(name: str, kwargs: dict) -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 2, 3)
    target = torch.tensor([[[0, 1, IGN], [2, 0, 0]]])
    extra_logits = torch.cat([logits, torch.randn(1, 3, 2, 7) * 10], dim=3)
    extra_target = torch.cat([target, torch.full((1, 2, 7), IGN)], dim=2)
    loss_fn = get_loss(name, **kwargs)
    assert loss_fn(extra_logits, extra_target).item() == pytest.approx(
        loss_fn(logits, target).item(), rel=1e-6
    )


@pytest.mark.parametrize("device", DEVICES)
def test_partial_ce_matches_torch_cross_entropy(device: str) -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 4, 5, 6, device=device)
    target = torch.randint(0, 4, (3, 5, 6), device=device)
    target[torch.rand(3, 5, 6, device=device) < 0.7] = IGN
    ours = PartialCrossEntropy()(logits, target)
    ref = F.cross_entropy(logits, target, ignore_index=IGN)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)

    weights = [0.5, 1.0, 2.0, 0.1]
    ours_w = PartialCrossEntropy(class_weights=weights).to(device)(logits, target)
    ref_w = F.cross_entropy(
        logits, target, weight=torch.tensor(weights, device=device), ignore_index=IGN
    )
    assert ours_w.item() == pytest.approx(ref_w.item(), rel=1e-5)


def test_partial_ce_balanced_hand_computed() -> None:
    logits = _logits([[2.0, 0.0, 1.0, 0.0, 7.0], [0.0, 0.0, 0.0, 1.0, -7.0]])
    target = _target([0, 0, 0, 1, IGN])
    l0 = math.log(1 + math.exp(-2.0))
    l1 = math.log(2.0)
    l2 = math.log(1 + math.exp(-1.0))
    l3 = math.log(1 + math.exp(-1.0))
    # N = 4, n_0 = 3, n_1 = 1 -> w_0 = 4/3, w_1 = 4; L = (1/N) sum w_{y_i} l_i
    expected = (4 / 3 * (l0 + l1 + l2) + 4 * l3) / 4
    loss = PartialCrossEntropy(class_weights="balanced")(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_class_weights_wrong_length_raises() -> None:
    loss_fn = PartialCrossEntropy(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"2 entries.*C=3"):
        loss_fn(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_constructor_and_input_validation() -> None:
    with pytest.raises(ValueError, match="activation"):
        ClassWeightedMaskedMSE(activation="relu")
    with pytest.raises(ValueError, match="balanced"):
        PartialCrossEntropy(class_weights="inverse")
    with pytest.raises(ValueError, match="non-negative"):
        PartialCrossEntropy(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        ClassWeightedMaskedMSE()(torch.randn(1, 3, 1, 2), torch.tensor([[[0, 5]]]))
    with pytest.raises(ValueError, match="target shape"):
        PartialCrossEntropy()(torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))
