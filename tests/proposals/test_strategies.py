"""Tests for the click-proposal strategies (hand-made small arrays)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.proposals import (
    Proposal,
    get_proposal_strategy,
    list_proposal_strategies,
    propose_clicks,
)

NO_POINTS = np.zeros((0, 3), dtype=np.int64)


def _grid(h: int = 64, w: int = 64, cell: int = 16) -> np.ndarray:
    """(H, W) superpixels: square cells numbered in raster order."""
    rows, cols = np.indices((h, w))
    return (rows // cell) * (w // cell) + cols // cell


def _probs(segments: np.ndarray, per_segment: dict[int, list[float]], default: list[float]):
    """(C, H, W) probabilities constant inside each superpixel."""
    table = np.tile(np.asarray(default, dtype=np.float64), (int(segments.max()) + 1, 1))
    for s, p in per_segment.items():
        table[s] = p
    return np.ascontiguousarray(table[segments].transpose(2, 0, 1))


def _cell_of(p: Proposal, cell: int = 16, w: int = 64) -> int:
    return (p.y // cell) * (w // cell) + p.x // cell


def _one(strategy: str, probs, seg, points=NO_POINTS, **kw) -> list[Proposal]:
    return propose_clicks(
        strategy, probabilities={"img": probs}, segments={"img": seg}, points={"img": points}, **kw
    )


# --------------------------------------------------------------------------- registry


def test_registry_lists_the_built_in_strategies():
    names = list_proposal_strategies()
    assert {"random", "entropy", "margin", "disagreement"} <= set(names)
    assert names == sorted(names)
    assert callable(get_proposal_strategy("entropy"))


def test_unknown_strategy_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown proposal strategy 'nope'") as err:
        get_proposal_strategy("nope")
    for name in ("random", "entropy", "margin", "disagreement"):
        assert repr(name) in str(err.value)
    seg = _grid()
    with pytest.raises(ValueError, match="'margin'"):
        _one("nope", _probs(seg, {}, [0.9, 0.1]), seg)


# ------------------------------------------------------------------------- strategies


def test_entropy_picks_the_flat_probability_superpixel():
    seg = _grid()
    probs = _probs(seg, {5: [1 / 3, 1 / 3, 1 / 3]}, [0.98, 0.01, 0.01])
    props = _one("entropy", probs, seg, k=3)
    first = props[0]
    assert first.segment == 5 and seg[first.y, first.x] == 5
    assert first.score == pytest.approx(1.0)  # normalised entropy of a uniform distribution
    # most interior pixel of the 16x16 cell (rows/cols 16..31): the central 2x2 plateau
    assert 23 <= first.x <= 24 and 23 <= first.y <= 24
    assert all(a.score >= b.score for a, b in itertools.pairwise(props))


def test_uncertain_area_weighs_the_doubt_by_the_area_a_click_labels():
    seg = _grid()
    big = seg.copy()
    big[np.isin(big, [9, 10, 13, 14])] = 9  # one superpixel of 4 cells (ids 10, 13, 14 unused)
    probs = _probs(big, {0: [1 / 3, 1 / 3, 1 / 3], 9: [0.8, 0.1, 0.1]}, [0.98, 0.01, 0.01])
    assert _one("entropy", probs, big, k=1)[0].segment == 0  # the flat but small one
    first = _one("uncertain_area", probs, big, k=1)[0]
    assert first.segment == 9  # less doubt per pixel, but 4 times the area
    h = -(0.8 * math.log(0.8) + 2 * 0.1 * math.log(0.1)) / math.log(3)
    mean_area = 64 * 64 / 13  # 13 superpixels share the image
    assert first.score == pytest.approx(h * 4 * 256 / mean_area)


def test_margin_picks_the_two_class_tie_where_entropy_does_not():
    seg = _grid()
    per_segment = {9: [0.45, 0.45, 0.10], 2: [0.40, 0.30, 0.30]}
    probs = _probs(seg, per_segment, [0.90, 0.05, 0.05])
    margin = _one("margin", probs, seg, k=2)
    assert margin[0].segment == 9
    assert margin[0].score == pytest.approx(1.0)
    assert margin[1].segment == 2
    assert margin[1].score == pytest.approx(0.9)
    # entropy ranks the three-way spread first: the two strategies really differ
    assert _one("entropy", probs, seg, k=1)[0].segment == 2


def _disagreement_case():
    seg = _grid()
    probs = _probs(seg, {}, [0.9, 0.1])  # the model says class 0 everywhere
    # one pixel of cell 3 (rows 0..15, cols 48..63) is where the model is most sure
    probs[:, 4, 60] = [0.99, 0.01]
    labels = np.full(seg.shape, IGNORE_INDEX, dtype=np.uint8)
    labels[seg == 3] = 1  # clicked as class 1: disagrees with the model
    labels[seg == 6] = 0  # clicked as class 0: agrees
    points = np.array([[56, 8, 1], [40, 24, 0]])  # inside cells 3 and 6
    return seg, probs, labels, points


def test_disagreement_proposes_the_disagreeing_superpixel_at_the_confident_pixel():
    seg, probs, labels, points = _disagreement_case()
    props = _one("disagreement", probs, seg, points, pseudo_labels={"img": labels}, k=1)
    (p,) = props
    assert p.segment == 3
    assert (p.x, p.y) == (60, 4)  # most confident pixel of the disagreeing class
    assert (p.x, p.y) != (56, 8)  # not the existing click
    mean_conf = (0.9 * 255 + 0.99) / 256
    assert p.score == pytest.approx(1.0 * mean_conf)


def test_disagreement_ignores_agreeing_superpixels_and_falls_back_to_margin():
    seg, probs, labels, points = _disagreement_case()
    probs[:, seg == 12] = np.array([0.5, 0.5])[:, None]  # a margin tie, no label
    props = _one(
        "disagreement", probs, seg, points, pseudo_labels={"img": labels}, k=4, min_distance=0
    )
    assert props[0].segment == 3 and props[0].score > 0
    fallback = props[1:]
    assert len(fallback) == 3
    assert all(p.score == 0.0 for p in fallback)  # documented: fallback proposals score 0
    assert fallback[0].segment == 12  # ranked by margin
    segments = [p.segment for p in props]
    assert 6 not in segments  # agreeing, clicked
    assert segments.count(3) == 1


def test_disagreement_without_any_disagreement_ranks_by_margin():
    seg = _grid()
    probs = _probs(seg, {7: [0.5, 0.5], 1: [0.6, 0.4]}, [0.9, 0.1])
    labels = np.zeros(seg.shape, dtype=np.uint8)
    labels[seg >= 8] = IGNORE_INDEX
    props = _one("disagreement", probs, seg, pseudo_labels={"img": labels}, k=2)
    assert [p.segment for p in props] == [7, 1]
    assert [p.score for p in props] == [0.0, 0.0]


def test_disagreement_needs_pseudo_labels():
    seg = _grid()
    with pytest.raises(ValueError, match="pseudo_labels for image 'img'"):
        _one("disagreement", _probs(seg, {}, [0.9, 0.1]), seg)


def test_random_is_seeded_and_uniform():
    seg = _grid(64, 64, 4)  # 256 superpixels
    probs = _probs(seg, {}, [0.9, 0.1])
    a = _one("random", probs, seg, k=256, min_distance=0, seed=3)
    assert a == _one("random", probs, seg, k=256, min_distance=0, seed=3)
    assert a != _one("random", probs, seg, k=256, min_distance=0, seed=4)
    assert len(a) == 256 and len({p.segment for p in a}) == 256
    scores = np.array([p.score for p in a])
    assert np.all(np.diff(scores) <= 0)  # one image: taken in score order
    assert 0.0 <= scores.min() and scores.max() < 1.0
    assert abs(scores.mean() - 0.5) < 0.06
    quartiles = np.histogram(scores, bins=4, range=(0, 1))[0]
    assert quartiles.min() > 40
    firsts = {_one("random", probs, seg, k=1, seed=s)[0].segment for s in range(40)}
    assert len(firsts) > 25


# -------------------------------------------------------------------------- selection


def test_spacing_holds_within_each_image():
    seg = _grid(64, 64, 4)
    probs = _probs(seg, {}, [0.9, 0.1])
    props = propose_clicks(
        "random",
        probabilities={"a": probs, "b": probs},
        segments={"a": seg, "b": seg},
        points={},
        k=100,
        min_distance=20.0,
    )
    assert 0 < len(props) < 100  # runs out of well-spaced candidates
    for name in ("a", "b"):
        xy = np.array([(p.x, p.y) for p in props if p.image == name], dtype=float)
        assert len(xy) >= 4
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        assert d[np.triu_indices(len(xy), 1)].min() >= 20.0


def test_images_with_fewer_clicks_get_more_proposals():
    seg = _grid(64, 64, 8)
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], size=64)[seg].transpose(2, 0, 1)
    clicks = np.array([[x * 8 + 4, 60, 0] for x in range(8)])
    props = propose_clicks(
        "entropy",
        probabilities={"few": probs, "many": probs},
        segments={"few": seg, "many": seg},
        points={"few": NO_POINTS, "many": clicks},
        k=10,
        min_distance=0,
    )
    counts = {name: sum(p.image == name for p in props) for name in ("few", "many")}
    assert counts["few"] > counts["many"]


def test_click_weighting_rule_is_one_over_sqrt_one_plus_relative_clicks():
    seg = _grid(32, 32, 16)  # 4 superpixels
    a = _probs(seg, {}, [0.5, 0.5])  # margin 1.0 everywhere
    b = _probs(seg, {}, [0.95, 0.05])  # margin 0.1 everywhere
    clicks = np.array([[20, 20, 0], [21, 20, 0]])  # both in superpixel 3 of "a"
    kw = dict(probabilities={"a": a, "b": b}, segments={"a": seg, "b": seg}, min_distance=0)
    # mean clicks = 1: w(a) = 1/sqrt(3) ~ 0.577 -> 0.577 > 0.1 * 1/sqrt(1 + 0): "a" first
    props = propose_clicks("margin", points={"a": clicks}, k=8, **kw)
    assert [p.image for p in props] == ["a"] * 3 + ["b"] * 4
    assert all(p.score == pytest.approx(1.0) for p in props[:3])  # scores are unweighted
    # with a weaker "a" (margin 0.15 * 0.577 = 0.087 < 0.1), "b" comes first
    a2 = _probs(seg, {}, [0.925, 0.075])
    props = propose_clicks(
        "margin", points={"a": clicks}, k=8, **{**kw, "probabilities": {"a": a2, "b": b}}
    )
    assert [p.image for p in props] == ["b"] * 4 + ["a"] * 3
    # without the clicks, "a" would win again
    props = propose_clicks("margin", points={}, k=1, **{**kw, "probabilities": {"a": a2, "b": b}})
    assert props[0].image == "a"


@pytest.mark.parametrize("strategy", ["random", "entropy", "margin"])
def test_superpixels_with_clicks_are_skipped(strategy):
    seg = _grid()
    probs = _probs(seg, {}, [0.5, 0.5])
    points = np.array([[5, 5, 0], [40, 40, 1], [41, 40, 1], [63, 63, 0]])
    clicked = {int(seg[y, x]) for x, y, _ in points}
    props = _one(strategy, probs, seg, points, k=16, min_distance=0)
    assert len(props) == 16 - len(clicked)
    assert not clicked & {p.segment for p in props}


def test_per_image_count_is_honoured():
    seg = _grid()
    probs = _probs(seg, {}, [0.6, 0.4])
    single = np.zeros((20, 20), dtype=np.int64)  # one superpixel: one candidate only
    props = propose_clicks(
        "margin",
        probabilities={"a": probs, "b": probs, "c": _probs(single, {}, [0.5, 0.5])},
        segments={"a": seg, "b": seg, "c": single},
        points={"a": np.array([[1, 1, 0]] * 5)},
        per_image=3,
        k=1,  # overridden
        min_distance=0,
    )
    counts = {name: sum(p.image == name for p in props) for name in "abc"}
    assert counts == {"a": 3, "b": 3, "c": 1}


def test_valid_mask_is_honoured():
    seg = _grid()
    probs = _probs(seg, {5: [0.5, 0.5], 10: [0.5, 0.5]}, [0.9, 0.1])
    valid = np.ones(seg.shape, dtype=bool)
    valid[seg == 5] = False  # the best superpixel is all nodata
    valid[32:48, 32:40] = False  # left half of superpixel 10 is nodata
    props = _one("margin", probs, seg, k=16, min_distance=0, valid={"img": valid})
    assert 5 not in {p.segment for p in props}
    assert props[0].segment == 10
    assert all(valid[p.y, p.x] for p in props)
    assert 43 <= props[0].x <= 44  # middle of the valid half (cols 40..47), off the nodata


def test_proposals_sit_inside_their_superpixel_on_irregular_shapes():
    rng = np.random.default_rng(1)
    seg = np.kron(rng.integers(0, 6, size=(8, 8)), np.ones((6, 6), dtype=np.int64))
    probs = rng.dirichlet([1, 1], size=(48, 48)).transpose(2, 0, 1)
    props = _one("entropy", probs, seg, k=50, min_distance=0)
    assert len(props) == len(np.unique(seg))
    for p in props:
        assert seg[p.y, p.x] == p.segment


def test_deterministic_and_independent_of_mapping_order():
    seg = _grid(64, 64, 8)
    rng = np.random.default_rng(2)
    probs = {n: rng.dirichlet([1, 1, 1], size=(64, 64)).transpose(2, 0, 1) for n in "xyz"}
    segs = dict.fromkeys("xyz", seg)
    first = propose_clicks("random", probabilities=probs, segments=segs, points={}, k=9)
    reordered = {n: probs[n] for n in "zyx"}
    again = propose_clicks("random", probabilities=reordered, segments=segs, points={}, k=9)
    assert first == again
    assert all(isinstance(p.x, int) and isinstance(p.score, float) for p in first)


def test_empty_requests_return_nothing():
    seg = _grid()
    probs = _probs(seg, {}, [0.5, 0.5])
    assert _one("margin", probs, seg, k=0) == []
    assert _one("margin", probs, seg, per_image=0) == []
    assert propose_clicks("margin", probabilities={}, segments={}, points={}) == []


# ------------------------------------------------------------------------- validation


def _kwargs():
    seg = _grid(16, 16, 8)
    return dict(
        probabilities={"good": _probs(seg, {}, [0.5, 0.5]), "tile7": _probs(seg, {}, [0.5, 0.5])},
        segments={"good": seg, "tile7": seg},
        points={},
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "probabilities",
            np.ones((16, 16)),
            r"probabilities\['tile7'\] must have shape \(C, H, W\)",
        ),
        ("probabilities", np.ones((1, 16, 16)), r"probabilities\['tile7'\] must have C >= 2"),
        ("probabilities", np.full((2, 16, 16), 3.0), r"probabilities\['tile7'\] must lie in"),
        ("segments", np.zeros((16, 15), dtype=int), r"segments\['tile7'\] has shape \(16, 15\)"),
        ("segments", np.zeros((16, 16)), r"segments\['tile7'\] must be an integer"),
        ("points", np.zeros((2, 2), dtype=int), r"points\['tile7'\] must have shape \(N, 3\)"),
        ("points", np.array([[16, 0, 0]]), r"points\['tile7'\] row 0 \(x=16, y=0\) lies outside"),
        ("pseudo_labels", np.zeros((8, 8), dtype=np.uint8), r"pseudo_labels\['tile7'\] has shape"),
        ("pseudo_labels", np.full((16, 16), 7, dtype=np.uint8), r"pseudo_labels\['tile7'\] holds"),
        ("valid", np.ones((16, 16, 1), dtype=bool), r"valid\['tile7'\] has shape"),
        ("valid", np.ones((16, 16)), r"valid\['tile7'\] must be a bool array"),
    ],
)
def test_bad_arrays_raise_naming_the_image(field, value, message):
    kw = _kwargs()
    kw[field] = {**kw.get(field, {}), "tile7": value}
    with pytest.raises(ValueError, match=message):
        propose_clicks("margin", **kw)


def test_mapping_keys_must_match():
    kw = _kwargs()
    kw["segments"] = {"good": kw["segments"]["good"]}
    with pytest.raises(ValueError, match=r"segments has no entry for image\(s\) \['tile7'\]"):
        propose_clicks("margin", **kw)
    kw = _kwargs()
    kw["points"] = {"other": NO_POINTS}
    with pytest.raises(ValueError, match=r"points has image\(s\) \['other'\]"):
        propose_clicks("margin", **kw)


@pytest.mark.parametrize(
    ("option", "value"),
    [("k", -1), ("k", 2.0), ("per_image", -2), ("min_distance", -1.0), ("min_distance", math.inf)],
)
def test_bad_options_raise(option, value):
    with pytest.raises(ValueError, match=option):
        propose_clicks("margin", **_kwargs(), **{option: value})
