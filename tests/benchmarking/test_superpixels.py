import logging
import math

import numpy as np

from pointseg.benchmarking import (
    NO_CLASS_BOUNDARY_NOTE,
    benchmark_superpixels,
    format_superpixel_table,
    write_superpixel_csv,
)
from pointseg.constants import IGNORE_INDEX


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
        assert r.n_images == 3 and r.boundary_images == 3
        assert 0 <= r.boundary_recall <= 1 and 0 <= r.undersegmentation_error <= 1
        assert 0 < r.achievable_accuracy <= 1 and 0 < r.pseudo_coverage <= 1
        assert r.ms_per_image >= 0
    finer = {r.method: r for r in rows if r.n_segments == 60}
    coarser = {r.method: r for r in rows if r.n_segments == 20}
    assert finer["grid"].achievable_accuracy >= coarser["grid"].achievable_accuracy
    assert len(seen) == 3 * 4
    table = format_superpixel_table(rows)
    assert "| slic | 20 |" in table
    assert "n/a" not in table
    path = write_superpixel_csv(tmp_path / "t.csv", rows)
    header = path.read_text().splitlines()[0]
    assert header.startswith("method,n_segments,achieved_segments")
    assert header.endswith(",n_images,boundary_images")


def _isprs_sample(name: str, seed: int, size: int = 48) -> tuple[str, np.ndarray, np.ndarray]:
    """Class quadrants whose borders are 3-pixel bands of ignore (ISPRS eroded masks)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    half = size // 2
    mask[:half, half:] = 1
    mask[half:, :half] = 2
    mask[half:, half:] = 3
    mask[half - 1 : half + 2, :] = IGNORE_INDEX
    mask[:, half - 1 : half + 2] = IGNORE_INDEX
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], np.uint8)
    image = colours[np.where(mask == IGNORE_INDEX, 0, mask)]
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return name, image, mask


def test_masks_with_ignore_class_borders_report_no_boundary_recall(tmp_path, caplog):
    samples = [_isprs_sample("top_1", 0), _isprs_sample("top_2", 1)]
    with caplog.at_level(logging.WARNING, logger="pointseg.benchmarking.superpixels"):
        rows = benchmark_superpixels(
            samples, methods=["grid"], counts=[16], n_classes=4, n_points=8
        )
    (row,) = rows
    assert math.isnan(row.boundary_recall) and row.boundary_images == 0
    assert row.n_images == 2
    # the other measures are still scored
    assert 0 <= row.undersegmentation_error <= 1 and 0 < row.achievable_accuracy <= 1
    assert "no class boundary between two labelled pixels" in caplog.text
    assert "top_1" in caplog.text and "n/a" in caplog.text
    table = format_superpixel_table(rows)
    assert "| grid | 16 | 16 | n/a |" in table
    assert NO_CLASS_BOUNDARY_NOTE in table
    assert "nan" not in table
    csv_text = write_superpixel_csv(tmp_path / "t.csv", rows).read_text()
    assert csv_text.splitlines()[1].split(",")[3] == "nan"


def test_mixed_masks_average_recall_over_images_with_a_boundary(caplog):
    name, image, mask = _isprs_sample("clean", 2)
    clean = mask.copy()
    clean[clean == IGNORE_INDEX] = 0  # the borders are labelled: real class boundaries
    samples = [(name, image, clean), _isprs_sample("eroded", 3)]
    with caplog.at_level(logging.WARNING, logger="pointseg.benchmarking.superpixels"):
        (row,) = benchmark_superpixels(
            samples, methods=["grid"], counts=[16], n_classes=4, n_points=8
        )
    assert row.boundary_images == 1 and row.n_images == 2
    assert 0 <= row.boundary_recall <= 1
    assert "1 of 2 mask(s)" in caplog.text and "eroded" in caplog.text
    table = format_superpixel_table([row])
    assert "(1/2 images)" in table and NO_CLASS_BOUNDARY_NOTE not in table
