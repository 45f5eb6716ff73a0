"""Cross-validation by group and paired differences (pointseg.experiments.protocol)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from pointseg.experiments import load_sweep, run_sweep
from pointseg.experiments.protocol import group_folds, mean_se, paired_difference


@pytest.mark.parametrize("n_groups", [3, 4, 7])
def test_every_group_is_tested_once_and_no_group_straddles_splits(n_groups):
    rng = np.random.default_rng(n_groups)
    names = [f"img{i:03d}_g{rng.integers(n_groups)}" for i in range(60)]
    names += [f"extra_g{g}" for g in range(n_groups)]  # every group present
    folds = group_folds(names, r"g\d+$")
    assert len(folds) == n_groups
    group = {n: n.rsplit("_", 1)[1] for n in names}
    tested = [g for f in folds for g in {group[n] for n in f["test"]}]
    assert sorted(tested) == sorted(set(group.values()))  # each group tested exactly once
    validated = [g for f in folds for g in {group[n] for n in f["val"]}]
    assert sorted(validated) == sorted(set(group.values()))
    for f in folds:
        splits = [{group[n] for n in f[s]} for s in ("train", "val", "test")]
        assert len(splits[1]) == len(splits[2]) == 1
        assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
        assert sorted(f["train"] + f["val"] + f["test"]) == sorted(names)


def test_fold_errors():
    with pytest.raises(ValueError, match="at least 3 groups"):
        group_folds(["a_t1", "b_t2"], r"t\d+$")
    with pytest.raises(ValueError, match="no group"):
        group_folds(["a_t1", "b", "c_t3", "d_t4"], r"t\d+$")


def test_paired_difference_against_hand_computed_values():
    rows = []
    a_vals = {(0, 0): 0.50, (0, 1): 0.55, (1, 0): 0.40, (1, 1): 0.47}
    b_vals = {(0, 0): 0.45, (0, 1): 0.52, (1, 0): 0.38, (1, 1): 0.40}
    for (fold, seed), v in a_vals.items():
        rows.append({"loss": "mse", "fold": fold, "seed": seed, "test_miou": v})
        rows.append({"loss": "ce", "fold": fold, "seed": seed, "test_miou": b_vals[fold, seed]})
    rows.append({"loss": "mse", "fold": 2, "seed": 0, "test_miou": 0.9})  # unpaired: ignored
    d = paired_difference(rows, {"loss": "mse"}, {"loss": "ce"}, pair_on=["fold", "seed"])
    diffs = [0.05, 0.03, 0.02, 0.07]  # by hand
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 3)
    assert d["n"] == 4 and d["mean"] == pytest.approx(0.0425)
    assert d["se"] == pytest.approx(sd / 2) == pytest.approx(0.01108678, abs=1e-8)
    assert d["resolved"]  # 0.0425 > 2 x 0.0111
    assert mean_se([0.5, 0.7]) == pytest.approx((0.6, 0.1, 2))
    noisy = paired_difference(
        [
            {"k": "a", "fold": 0, "test_miou": 0.5},
            {"k": "b", "fold": 0, "test_miou": 0.4},
            {"k": "a", "fold": 1, "test_miou": 0.3},
            {"k": "b", "fold": 1, "test_miou": 0.4},
        ],
        {"k": "a"},
        {"k": "b"},
        pair_on=["fold"],
    )
    assert noisy["mean"] == pytest.approx(0.0) and not noisy["resolved"]


def _cv_dataset(root: Path) -> Path:
    from pointseg.data import make_synthetic_dataset

    make_synthetic_dataset(root, n_images=8, size=32, seed=1)
    for i, path in enumerate(sorted((root / "images").glob("*.png"))):
        path.rename(path.with_name(f"{path.stem}_t{i % 4}.png"))
    for i, path in enumerate(sorted((root / "masks").glob("*.png"))):
        path.rename(path.with_name(f"{path.stem}_t{i % 4}.png"))
    return root


def _fake_train(calls):
    def train(cfg):
        calls.append(cfg)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
        fold = int(Path(cfg.split_file).stem.split("-")[1])
        # a fold effect shared by both losses and a constant loss effect of 0.02
        miou = 0.5 + 0.1 * fold + 0.01 * cfg.seed + (0.02 if cfg.loss == "masked_mse" else 0)
        (out / "metrics.json").write_text(json.dumps({"test": {"miou": miou}, "val": {}}))
        (out / "label_stats.json").write_text(json.dumps({"n_images": 4.0, "n_points": 40.0}))
        (out / "model.pt").write_bytes(b"")

    return train


def _cv_sweep(tmp_path, data, **extra):
    spec = {
        "name": "cv",
        "out": str(tmp_path / "out"),
        "folds": "by_group",
        "base": {"data": str(data), "group_pattern": r"t\d+$", "n_points": 10},
        "grid": {"loss": ["masked_mse", "partial_ce"], "seed": [0, 1]},
        "compare": [{"a": {"loss": "masked_mse"}, "b": {"loss": "partial_ce"}}],
        **extra,
    }
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_sweep(path)


def test_cross_validated_sweep_reports_paired_differences_and_resumes(tmp_path):
    data = _cv_dataset(tmp_path / "data")
    sweep = _cv_sweep(tmp_path, data)
    calls = []
    records = run_sweep(sweep, train=_fake_train(calls))
    assert len(records) == len(calls) == 2 * 2 * 4  # losses x seeds x folds
    folds = sorted((tmp_path / "out" / "folds").glob("fold-*.yaml"))
    assert len(folds) == 4
    tests = [yaml.safe_load(f.read_text())["test"] for f in folds]
    assert sorted(n for t in tests for n in t) == sorted(
        p.stem for p in (data / "images").iterdir()
    )
    md = (tmp_path / "out" / "results.md").read_text()
    assert "4 folds" in md and "s.e." in md
    line = next(r for r in md.splitlines() if r.startswith("| loss=masked_mse | loss=partial_ce"))
    assert "+0.0200" in line and "| 8 | yes |" in line  # fold and seed effects cancel
    # a rerun skips every finished run; a new seed runs only its own runs
    run_sweep(_cv_sweep(tmp_path, data), train=_fake_train(calls))
    assert len(calls) == 16
    bigger = _cv_sweep(
        tmp_path, data, grid={"loss": ["masked_mse", "partial_ce"], "seed": [0, 1, 2]}
    )
    run_sweep(bigger, train=_fake_train(calls))
    assert len(calls) == 16 + 8


@pytest.mark.parametrize(
    ("base", "match"),
    [
        ({"dataset": "landcoverai"}, "official train/test split"),
        ({"split_file": "s.yaml", "group_pattern": "x"}, "split_file is refused"),
        ({}, "group_pattern"),
    ],
)
def test_folds_are_refused_where_they_cannot_work(tmp_path, base, match):
    spec = {"folds": "by_group", "base": {"data": "x", **base}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=match):
        load_sweep(path)
