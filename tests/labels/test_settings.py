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
