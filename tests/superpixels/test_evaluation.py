import numpy as np
import pytest

from pointseg.constants import IGNORE_INDEX
from pointseg.superpixels.evaluation import (
    achievable_segmentation_accuracy,
    benchmark_superpixels,
    boundary_map,
    boundary_recall,
    format_superpixel_table,
    undersegmentation_error,
    write_superpixel_csv,
)


def test_boundary_map():
    labels = np.array([[0, 0, 1], [2, 2, 1]])
    np.testing.assert_array_equal(boundary_map(labels), [[True, True, False], [False, True, False]])


def test_boundary_recall_tolerance():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 1  # true boundary pixels: column 3
    seg = np.zeros((8, 8), np.int32)
    seg[:, 6:] = 1  # superpixel boundary pixels: column 5, two pixels away
    assert boundary_recall(seg, mask, tolerance=2) == 1.0
    assert boundary_recall(seg, mask, tolerance=1) == 0.0
    assert np.isnan(boundary_recall(seg, np.zeros((8, 8), np.uint8)))
    # a boundary next to ignored pixels does not count
    mask3 = mask.copy()
    mask3[:4, 3:5] = IGNORE_INDEX
    assert boundary_recall(seg, mask3, tolerance=2) == 1.0


def test_undersegmentation_and_asa_by_hand():
    mask = np.array([[0, 0, 1, 1]])
    seg = np.array([[0, 0, 0, 1]])
    # S0={0,1,2}: with G0 min(2, 1) = 1, with G1 min(1, 2) = 1; S1 inside G1: 0
    assert undersegmentation_error(seg, mask) == pytest.approx(2 / 4)
    assert achievable_segmentation_accuracy(seg, mask) == pytest.approx(3 / 4)
    # perfect superpixels
    assert undersegmentation_error(mask, mask) == 0.0
    assert achievable_segmentation_accuracy(mask, mask) == 1.0
    # two separate regions of one class are separate ground-truth segments
    mask2 = np.array([[0, 1, 0]])
    seg2 = np.array([[0, 0, 0]])
    assert undersegmentation_error(seg2, mask2) == pytest.approx((1 + 1 + 1) / 3)
    # ignored pixels are left out of every count
    mask3 = np.array([[0, 0, IGNORE_INDEX, 1]])
    assert achievable_segmentation_accuracy(np.array([[0, 0, 0, 1]]), mask3) == 1.0


def test_benchmark_rows(tiny_synthetic, tmp_path):
    from pointseg.data import FolderDataset

    ds = FolderDataset(tiny_synthetic, split="test")
    samples = [(s["name"], s["image"], s["mask"]) for s in (ds[i] for i in range(len(ds)))]
    seen = []
    rows = benchmark_superpixels(
        samples,
        methods=["slic", "grid"],
        counts=[20, 60],
        n_classes=5,
        n_points=10,
        on_segments=lambda name, m, k, img, seg: seen.append((name, m, k, seg.shape)),
    )
    assert [(r.method, r.n_segments) for r in rows] == [
        ("slic", 20),
        ("slic", 60),
        ("grid", 20),
        ("grid", 60),
    ]
    for r in rows:
        assert r.n_images == 3
        assert 0 <= r.boundary_recall <= 1 and 0 <= r.undersegmentation_error <= 1
        assert 0 < r.achievable_accuracy <= 1 and 0 < r.pseudo_coverage <= 1
        assert r.ms_per_image >= 0
    finer = {r.method: r for r in rows if r.n_segments == 60}
    coarser = {r.method: r for r in rows if r.n_segments == 20}
    assert finer["grid"].achievable_accuracy >= coarser["grid"].achievable_accuracy
    assert len(seen) == 3 * 4
    assert "| slic | 20 |" in format_superpixel_table(rows)
    path = write_superpixel_csv(tmp_path / "t.csv", rows)
    assert path.read_text().splitlines()[0].startswith("method,n_segments,achieved_segments")
