"""The simulated annotator: rounds of training, proposals answered from the masks."""

import csv

import pytest

from pointseg.experiments.loop import LoopSettings, run_annotation_loop
from pointseg.training import TrainConfig


def _cfg(data, tmp_path, **kw):
    base = dict(
        data=str(data),
        image_size=32,
        model="unet",
        model_options={"base_channels": 4, "depth": 2},
        batch_size=8,
        max_epochs=1,
        n_segments=30,
        superpixels="slic",
        accelerator="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["entropy", "uniform"])
def test_rounds_add_clicks_from_the_masks_and_record_mious(tiny_synthetic, tmp_path, strategy):
    loop = LoopSettings(strategy=strategy, rounds=3, clicks_per_round=3)
    rows = run_annotation_loop(_cfg(tiny_synthetic, tmp_path), loop, out=tmp_path / "loop")
    assert [r["round"] for r in rows] == [0, 1, 2]
    clicks = [r["clicks"] for r in rows]
    n_train = clicks[0] / 3
    assert clicks[0] == 3 * n_train and clicks[1] > clicks[0] and clicks[2] > clicks[1]
    assert clicks[2] <= 9 * n_train  # at most k per image and round
    assert all(0 <= r["test_miou"] <= 1 for r in rows)
    saved = list(csv.DictReader((tmp_path / "loop" / "loop.csv").open()))
    assert [int(r["clicks"]) for r in saved] == clicks
    # every click of a round is kept in the next one, and answered with the mask's class
    first = list(csv.DictReader((tmp_path / "loop" / "round-0" / "points.csv").open()))
    second = list(csv.DictReader((tmp_path / "loop" / "round-1" / "points.csv").open()))
    if strategy != "uniform":  # a random baseline draws afresh at each budget
        assert {tuple(r.values()) for r in first} <= {tuple(r.values()) for r in second}
    from pointseg.data import FolderDataset

    ds = FolderDataset(tiny_synthetic, split=None)
    masks = {ds.names[i]: ds[i]["mask"] for i in range(len(ds))}
    classes = list(ds.class_map.names)
    for r in second:
        assert classes[masks[r["image"]][int(r["y"]), int(r["x"])]] == r["class"]


def test_bad_loop_settings():
    with pytest.raises(ValueError, match="available"):
        LoopSettings(strategy="nope")
    with pytest.raises(ValueError, match=">= 1"):
        LoopSettings(rounds=0)
    with pytest.raises(ValueError, match="reference_clicks"):
        LoopSettings(reference_clicks=0)


def test_the_goal_table_finds_the_first_round_reaching_the_reference():
    from pointseg.experiments.loop import _goal_lines

    def row(strategy, rnd, fold, miou, cpi):
        return {
            "strategy": strategy,
            "round": rnd,
            "fold": fold,
            "seed": 0,
            "test_miou": miou,
            "clicks_per_image": cpi,
        }

    rows = [
        *(row("entropy", 0, f, 0.50 + 0.01 * f, 5) for f in range(3)),
        *(row("entropy", 1, f, 0.61 + 0.01 * f, 10) for f in range(3)),
        *(row("margin", r, f, 0.40, 5 * (r + 1)) for r in (0, 1) for f in range(3)),
    ]
    refs = [row("uniform", "reference", f, 0.60 + 0.01 * f, 50) for f in range(3)]
    lines = _goal_lines(rows, refs, ["entropy", "margin"])
    entropy = next(line for line in lines if "| entropy |" in line)
    cells = [c.strip() for c in entropy.strip("|").split("|")]
    assert cells[:6] == ["uniform 50/image", "0.6100 ± 0.0058", "entropy", "1", "10.0", "yes"]
    assert cells[6] == "+0.0100"  # paired on fold: 0.61 - 0.60 in every fold
    assert "not reached" in next(line for line in lines if "| margin |" in line)


@pytest.mark.slow
def test_a_rerun_keeps_rounds_trained_on_the_same_clicks(tiny_synthetic, tmp_path):
    from pointseg.training import run_training

    calls = []

    def train(cfg):
        calls.append(cfg.out)
        return run_training(cfg)

    loop = LoopSettings(strategy="margin", rounds=2, clicks_per_round=2)
    cfg = _cfg(tiny_synthetic, tmp_path)
    first = run_annotation_loop(cfg, loop, out=tmp_path / "loop", train=train)
    assert len(calls) == 2
    again = run_annotation_loop(cfg, loop, out=tmp_path / "loop", train=train)
    assert len(calls) == 2 and again == first
    longer = LoopSettings(strategy="margin", rounds=3, clicks_per_round=2)
    run_annotation_loop(cfg, longer, out=tmp_path / "loop", train=train)
    assert len(calls) == 3  # only the new round


@pytest.mark.slow
def test_a_cross_validated_loop_sweep_compares_strategies_with_random_clicks(tmp_path):
    import yaml

    from pointseg.data import make_synthetic_dataset
    from pointseg.experiments import load_sweep, run_sweep

    root = make_synthetic_dataset(tmp_path / "data", n_images=9, size=32, seed=2)
    for sub in ("images", "masks"):
        for i, path in enumerate(sorted((root / sub).glob("*.png"))):
            path.rename(path.with_name(f"{path.stem}_t{i % 3}.png"))
    spec = {
        "name": "loop",
        "out": str(tmp_path / "out"),
        "folds": "by_group",
        "loop": {
            "strategies": ["uniform", "entropy"],
            "rounds": 2,
            "clicks_per_round": 3,
            "reference_clicks": 6,
        },
        "base": {**_cfg(root, tmp_path).to_dict(), "group_pattern": r"t\d+$"},
    }
    spec["base"] = {k: v for k, v in spec["base"].items() if k not in ("out", "fractions")}
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(spec))
    records = run_sweep(load_sweep(path), overrides={"progress": False})
    assert len(records) == 2 * 3 and all(r.status == "done" for r in records)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| entropy | uniform | 1 |" in md and "| 3 |" in md  # 3 folds paired
    assert "## Reaching the random reference" in md and "| uniform 6/image |" in md
    rows = list(csv.DictReader((tmp_path / "out" / "loop_results.csv").open()))
    assert len(rows) == 2 * 3 * 2 + 3  # a reference run per fold for the random baseline
    refs = [r for r in rows if r["round"] == "reference"]
    assert {r["strategy"] for r in refs} == {"uniform"}
    assert all(float(r["clicks_per_image"]) == 6 for r in refs)
    assert (tmp_path / "out" / "miou_vs_clicks.png").is_file()
    with pytest.raises(ValueError, match="loop"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**spec, "loop": {"strategies": ["nope"]}}))
        load_sweep(bad)
