"""Tests for the synthetic aerial scene generator."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage
from skimage.measure import label, regionprops

from pointseg.constants import IGNORE_INDEX, LANDCOVER_CLASSES, LANDCOVER_COLORS
from pointseg.data import synthetic
from pointseg.data.synthetic import generate_scene, make_synthetic_dataset

BACKGROUND, BUILDING, WOODLAND, WATER, ROAD = range(5)
N_SCENES = 40


@pytest.fixture(scope="module")
def scenes128() -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_scene(seed=s, size=128) for s in range(N_SCENES)]


# ------------------------------------------------------------------------------------------
# generate_scene
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 57, 128, 256])
def test_shapes_dtypes_and_values(size: int) -> None:
    image, mask = generate_scene(seed=3, size=size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    assert mask.shape == (size, size)
    assert mask.dtype == np.uint8
    assert mask.max() <= 4


def test_default_size_is_256() -> None:
    image, mask = generate_scene(seed=0)
    assert image.shape == (256, 256, 3)
    assert mask.shape == (256, 256)


def test_deterministic_per_seed() -> None:
    a_img, a_mask = generate_scene(seed=7, size=96)
    b_img, b_mask = generate_scene(seed=7, size=96)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    c_img, c_mask = generate_scene(seed=8, size=96)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_mask, c_mask)


def test_does_not_touch_global_rng() -> None:
    before = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is the point)
    generate_scene(seed=1, size=64)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


@pytest.mark.parametrize("size", [31, 0, -5, 64.0, "64", True, None])
def test_invalid_size_raises(size: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(size))):
        generate_scene(seed=0, size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_invalid_seed_raises(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_scene(seed=seed, size=64)  # type: ignore[arg-type]


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        generate_scene(0, 64)  # type: ignore[misc]


def test_every_class_in_most_scenes(scenes128: list[tuple[np.ndarray, np.ndarray]]) -> None:
    present = np.array([np.bincount(m.ravel(), minlength=5) > 0 for _, m in scenes128])
    fractions = present.mean(axis=0)
    for name, frac in zip(LANDCOVER_CLASSES, fractions, strict=True):
        assert frac >= 0.7, f"{name} present in only {frac:.0%} of scenes"
    assert fractions[BACKGROUND] >= 0.95


def test_class_shares_within_bounds(scenes128: list[tuple[np.ndarray, np.ndarray]]) -> None:
    counts = sum(np.bincount(m.ravel(), minlength=5) for _, m in scenes128)
    shares = counts / counts.sum()
    bounds = {
        BACKGROUND: (0.35, 0.70),
        BUILDING: (0.02, 0.12),
        WOODLAND: (0.08, 0.35),
        WATER: (0.04, 0.25),
        ROAD: (0.03, 0.15),
    }
    for cls, (lo, hi) in bounds.items():
        assert lo <= shares[cls] <= hi, f"{LANDCOVER_CLASSES[cls]} share {shares[cls]:.3f}"


def _texture(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=2)
    return np.abs(ndimage.laplace(grey))


def test_water_smoother_than_woodland(scenes128: list[tuple[np.ndarray, np.ndarray]]) -> None:
    water_vals, wood_vals = [], []
    for image, mask in scenes128:
        tex = _texture(image)
        # Stay away from class borders, where edges dominate the Laplacian.
        for cls, out in ((WATER, water_vals), (WOODLAND, wood_vals)):
            inner = ndimage.binary_erosion(mask == cls, iterations=3)
            out.append(tex[inner])
    water = np.concatenate(water_vals)
    wood = np.concatenate(wood_vals)
    assert water.size > 1000 and wood.size > 1000
    assert water.mean() < 0.6 * wood.mean()


def test_classes_differ_in_colour(scenes128: list[tuple[np.ndarray, np.ndarray]]) -> None:
    means = np.zeros((5, 3))
    counts = np.zeros(5)
    for image, mask in scenes128:
        for cls in range(5):
            sel = mask == cls
            means[cls] += image[sel].astype(np.float64).sum(axis=0)
            counts[cls] += sel.sum()
    means /= counts[:, None]
    r, g, b = means.T
    assert b[WATER] > r[WATER]  # blue-ish water
    assert g[WOODLAND] > r[WOODLAND] and g[WOODLAND] > b[WOODLAND]  # green woods
    assert means[WOODLAND].sum() < means[BACKGROUND].sum()  # woods darker than fields
    assert np.ptp(means[ROAD]) < 25  # grey roads


def _rotated_extent(coords: np.ndarray) -> float:
    """Area over the smallest rotated bounding box (in pixels) of a pixel set."""
    theta = np.deg2rad(np.arange(0.0, 90.0, 2.0))
    along = coords @ np.stack([np.cos(theta), np.sin(theta)])
    across = coords @ np.stack([-np.sin(theta), np.cos(theta)])
    boxes = (np.ptp(along, axis=0) + 1) * (np.ptp(across, axis=0) + 1)
    return len(coords) / float(boxes.min())


def test_buildings_are_rectangles(scenes128: list[tuple[np.ndarray, np.ndarray]]) -> None:
    extents, solidities = [], []
    for _, mask in scenes128:
        for region in regionprops(label(mask == BUILDING, connectivity=1)):
            if region.area >= 20:
                extents.append(_rotated_extent(region.coords.astype(np.float64)))
                solidities.append(region.solidity)
    assert len(extents) >= 100
    # Pixelated rotated rectangles score ~0.8 here; a pixelated disc scores ~0.67.
    assert np.median(extents) >= 0.75
    assert np.mean(np.asarray(extents) >= 0.6) >= 0.95
    assert np.mean(np.asarray(solidities) >= 0.75) >= 0.95


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(a)
    h, w = a.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_buildings_cast_shadows_outside_the_mask(
    scenes128: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    # Background pixels just beside the buildings are much darker on one side (the shadow)
    # than on the other: the shadow darkens the image, the mask there stays background.
    ratios = []
    for image, mask in scenes128:
        building = mask == BUILDING
        if building.sum() < 50:
            continue
        grey = image.astype(np.float32).mean(axis=2)
        means = []
        for dy, dx in [(-2, 0), (2, 0), (0, -2), (0, 2), (-2, -2), (-2, 2), (2, -2), (2, 2)]:
            beside = _shifted(building, dy, dx) & (mask == BACKGROUND)
            if beside.sum() >= 20:
                means.append(grey[beside].mean())
        if len(means) >= 6:
            ratios.append(min(means) / max(means))
    assert len(ratios) >= 20
    assert np.median(ratios) < 0.8


def test_generation_is_fast() -> None:
    import time

    generate_scene(seed=0, size=256)
    best = np.inf
    for seed in range(5):
        start = time.perf_counter()
        generate_scene(seed=seed, size=256)
        best = min(best, time.perf_counter() - start)
    assert best < 0.2  # generous: ~30 ms on a 2-core CI machine


# ------------------------------------------------------------------------------------------
# make_synthetic_dataset
# ------------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[np.ndarray, str]:
    with Image.open(path) as im:
        return np.asarray(im), im.mode


def test_dataset_layout(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    out = make_synthetic_dataset(root, n_images=3, size=48, seed=5)
    assert out == root
    names = [f"scene_{i:04d}.png" for i in range(3)]
    assert sorted(p.name for p in (root / "images").iterdir()) == names
    assert sorted(p.name for p in (root / "masks").iterdir()) == names
    for name in names:
        image, mode = _read(root / "images" / name)
        assert mode == "RGB" and image.shape == (48, 48, 3)
        mask, mode = _read(root / "masks" / name)
        assert mode == "L" and mask.shape == (48, 48) and mask.dtype == np.uint8
        assert mask.max() <= 4
    assert not list(root.rglob(".*.tmp*"))


def test_dataset_is_reproducible_and_scenes_differ(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", n_images=3, size=40, seed=1)
    b = make_synthetic_dataset(tmp_path / "b", n_images=2, size=40, seed=1)
    for i in range(2):
        name = f"scene_{i:04d}.png"
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
        assert (a / "masks" / name).read_bytes() == (b / "masks" / name).read_bytes()
    img0, _ = _read(a / "images" / "scene_0000.png")
    img1, _ = _read(a / "images" / "scene_0001.png")
    assert not np.array_equal(img0, img1)
    c = make_synthetic_dataset(tmp_path / "c", n_images=1, size=40, seed=2)
    img_c, _ = _read(c / "images" / "scene_0000.png")
    assert not np.array_equal(img0, img_c)


def test_classes_yaml(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", n_images=1, size=32)
    text = (root / "classes.yaml").read_text()
    assert text.startswith("classes:\n  - name: background\n    values: [0]\n")
    data = yaml.safe_load(text)
    assert set(data) == {"classes", "ignore_values", "background"}
    assert len(data["classes"]) == 5
    for i, entry in enumerate(data["classes"]):
        assert entry == {
            "name": LANDCOVER_CLASSES[i],
            "values": [i],
            "color": list(LANDCOVER_COLORS[i]),
        }
    assert data["ignore_values"] == [IGNORE_INDEX]
    assert data["background"] == "background"


def test_classes_yaml_loads_with_class_file_reader(tmp_path: Path) -> None:
    classes = pytest.importorskip("pointseg.data.classes")
    root = make_synthetic_dataset(tmp_path / "e", n_images=1, size=32)
    class_map = classes.load_class_file(root / "classes.yaml")
    assert tuple(class_map.names) == LANDCOVER_CLASSES


def test_rerun_returns_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_synthetic_dataset(tmp_path / "f", n_images=2, size=32, seed=4)
    manifest = yaml.safe_load((root / "synthetic.yaml").read_text())
    assert manifest["n_images"] == 2 and manifest["size"] == 32 and manifest["seed"] == 4

    def boom(**kwargs: object) -> None:
        raise AssertionError("regenerated an existing dataset")

    monkeypatch.setattr(synthetic, "generate_scene", boom)
    assert make_synthetic_dataset(root, n_images=2, size=32, seed=4) == root


def test_different_config_in_same_folder_raises(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "g", n_images=2, size=32, seed=4)
    for kwargs in ({"n_images": 3, "seed": 4}, {"n_images": 2, "seed": 5}):
        with pytest.raises(FileExistsError, match=r"overwrite=True") as info:
            make_synthetic_dataset(root, size=32, **kwargs)
        assert str(root) in str(info.value)


def test_foreign_images_raise(tmp_path: Path) -> None:
    root = tmp_path / "h"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "photo.png")
    with pytest.raises(FileExistsError, match="another folder"):
        make_synthetic_dataset(root, n_images=1, size=32)


def test_incomplete_dataset_raises(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "i", n_images=2, size=32)
    (root / "masks" / "scene_0001.png").unlink()
    with pytest.raises(FileExistsError):
        make_synthetic_dataset(root, n_images=2, size=32)
    make_synthetic_dataset(root, n_images=2, size=32, overwrite=True)
    assert (root / "masks" / "scene_0001.png").is_file()


def test_overwrite_regenerates_and_drops_stale_scenes(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "j", n_images=3, size=32, seed=0)
    make_synthetic_dataset(root, n_images=2, size=40, seed=1, overwrite=True)
    assert sorted(p.name for p in (root / "images").iterdir()) == [
        "scene_0000.png",
        "scene_0001.png",
    ]
    assert sorted(p.name for p in (root / "masks").iterdir()) == [
        "scene_0000.png",
        "scene_0001.png",
    ]
    image, _ = _read(root / "images" / "scene_0000.png")
    assert image.shape == (40, 40, 3)
    manifest = yaml.safe_load((root / "synthetic.yaml").read_text())
    assert manifest["n_images"] == 2 and manifest["size"] == 40 and manifest["seed"] == 1
    # And the new dataset is now recognised as complete.
    assert make_synthetic_dataset(root, n_images=2, size=40, seed=1) == root


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "k"
    root.mkdir()
    make_synthetic_dataset(root, n_images=1, size=32)
    assert (root / "images" / "scene_0000.png").is_file()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_images": 0}, "n_images"),
        ({"n_images": 1.0}, "n_images"),
        ({"n_images": 1, "size": 16}, "16"),
        ({"n_images": 1, "seed": -1}, "seed"),
    ],
)
def test_dataset_validation(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_synthetic_dataset(tmp_path / "l", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "l").exists()
