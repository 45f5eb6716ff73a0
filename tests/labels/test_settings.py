"""PseudoLabelSettings: one frozen object, its cache key and its labels."""

import dataclasses

import numpy as np
import pytest

from pointseg.labels import PseudoLabelCache, PseudoLabelSettings, make_pseudo_label
from pointseg.training import TrainConfig


def test_settings_are_frozen_normalised_and_hashable():
    a = PseudoLabelSettings(method="grid", n_segments=64, fill_counts=(4, 16), options={"x": 1})
    b = PseudoLabelSettings(method="grid", n_segments=64, fill_counts=[16, 4], options=(("x", 1),))
    assert a == b and hash(a) == hash(b) and a.fill_counts == (16, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.n_segments = 3  # type: ignore[misc]
    assert a.cache_key(n_classes=3) == b.cache_key(n_classes=3)
    assert a.cache_key(n_classes=3) != dataclasses.replace(a, seed=1).cache_key(n_classes=3)


@pytest.mark.parametrize(
    "kwargs", [{"method": "nope"}, {"n_segments": 0}, {"n_segments": 10, "fill_counts": (10,)}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        PseudoLabelSettings(**kwargs)


def test_training_config_and_shorthand_give_the_same_labels_and_cache_entry(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    pts = np.array([[3, 4, 0], [20, 25, 1]])
    cfg = TrainConfig(superpixels="grid", n_segments=16, seed=2)
    settings = cfg.pseudo_label_settings()
    cache = PseudoLabelCache(tmp_path)
    a = settings.label(image, pts, n_classes=2, cache=cache)
    b = make_pseudo_label(image, pts, n_classes=2, method="grid", n_segments=16, seed=2)
    assert np.array_equal(a, b)
    assert len(list(tmp_path.rglob("*.png"))) == 1
    settings.label(image, pts, n_classes=2, cache=cache)  # a hit: no second entry
    assert len(list(tmp_path.rglob("*.png"))) == 1


# ------------------------------------------------------------------ point-aware propagation


def _scene(seed=0, shape=(96, 128)):
    from pointseg.data.synthetic import generate_mosaic

    return generate_mosaic(seed=seed, shape=shape, tile=48)


def test_point_aware_settings_walk_the_same_hierarchy_as_the_superpixels():
    from pointseg.labels import point_aware_labels
    from pointseg.points import sample_points
    from pointseg.superpixels import hers_hierarchy

    image, mask = _scene()
    pts = sample_points(mask, n_points=25, scheme="per_class", seed=1)
    majority = PseudoLabelSettings(n_segments=60)
    aware = PseudoLabelSettings(n_segments=60, propagation="point_aware", max_region_factor=3)
    levels = aware.segments(image)
    assert len(levels) == 3 and all(lv.shape == mask.shape for lv in levels)
    assert np.array_equal(levels[0], majority.segments(image)[0])  # the superpixels first
    n = mask.size
    expected = point_aware_labels(
        hers_hierarchy(image),
        pts,
        n_classes=5,
        max_area=3 * n / 60,
        min_level=n - 60,
    )
    assert np.array_equal(aware.label(image, pts, n_classes=5), expected)


def test_point_aware_labels_at_least_every_clicked_superpixel_and_split_conflicts():
    from pointseg.points import sample_points

    image, mask = _scene(seed=2)
    pts = sample_points(mask, n_points=30, scheme="per_class", seed=0)
    majority = PseudoLabelSettings(n_segments=80)
    tiny = PseudoLabelSettings(n_segments=80, propagation="point_aware", max_region_factor=0.01)
    seg = majority.segments(image)[0]
    maj = majority.label(image, pts, n_classes=5)
    got = tiny.label(image, pts, n_classes=5)
    classes_in = {}
    for x, y, c in pts:
        classes_in.setdefault(int(seg[y, x]), set()).add(int(c))
    for s, classes in classes_in.items():
        inside = seg == s
        if len(classes) == 1:  # a superpixel of one class: exactly what the vote gives
            assert (got[inside] == maj[inside]).all()
        else:  # a conflict: each class keeps pixels of its own, none spills outside
            assert set(np.unique(got[inside])) - {255} == classes
    # with no room to grow, nothing is labelled outside the clicked superpixels
    assert ((got != 255) <= np.isin(seg, list(classes_in))).all()
    assert any(len(c) > 1 for c in classes_in.values())  # the scene has a conflict to test


def test_point_aware_cache_keys_differ_and_majority_keys_stay_as_they_were():
    majority = PseudoLabelSettings(n_segments=50)
    assert "propagation" not in majority.cache_key(n_classes=3)  # old caches stay valid
    assert majority.propagation_options() == {}
    aware = dataclasses.replace(majority, propagation="point_aware")
    key = aware.cache_key(n_classes=3)
    assert key["propagation"] == "point_aware" and key["max_region_factor"] == 2.0
    wider = dataclasses.replace(aware, max_region_factor=4)
    assert wider.cache_key(n_classes=3) != key
    assert aware.for_area(10_000, 100).propagation == "point_aware"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"propagation": "flood"}, "unknown propagation"),
        ({"propagation": "point_aware", "method": "slic"}, "needs superpixels 'hers'"),
        ({"propagation": "point_aware", "fill_counts": (10,)}, "replaces fill_counts"),
        ({"propagation": "point_aware", "max_region_factor": 0}, "max_region_factor"),
        ({"propagation": "point_aware", "max_region_factor": "big"}, "max_region_factor"),
    ],
)
def test_bad_point_aware_settings_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PseudoLabelSettings(**kwargs)


def test_point_aware_window_labels_go_through_the_levels_store(tmp_path):
    from pointseg.points import sample_points
    from pointseg.training.image_windows import LevelsStore, label_image

    image, mask = _scene(seed=3, shape=(300, 200))
    pts = sample_points(mask, n_points=20, scheme="per_class", seed=0)
    store = LevelsStore(tmp_path, "abcdef")
    kw = {"n_classes": 5, "pixels_per_segment": 300.0, "block_size": 256, "margin": 32}
    first = label_image(image, pts, levels=store, propagation="point_aware", **kw)
    again = label_image(image, pts, levels=store, propagation="point_aware", **kw)
    fresh = label_image(image, pts, propagation="point_aware", **kw)
    assert np.array_equal(first, again) and np.array_equal(first, fresh)
    assert len(list(tmp_path.rglob("*.npz"))) == 2  # two blocks, three levels each
    majority = label_image(image, pts, levels=store, **kw)
    assert not np.array_equal(majority, first)
    assert len(list(tmp_path.rglob("*.npz"))) == 4  # majority levels are stored apart
