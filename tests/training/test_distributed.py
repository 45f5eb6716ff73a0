"""Distributed training: rank shares, DDP over 2 gloo processes, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from pointseg.constants import IGNORE_INDEX
from pointseg.training import TrainConfig
from pointseg.training.callbacks import read_history
from pointseg.training.distributed import (
    DistContext,
    RankShard,
    setup_distributed,
    shard_indices,
    torchrun_command,
)
from pointseg.training.windows import DrawSampler

# ---------------------------------------------------------------------------- shares


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_indices_are_disjoint_and_cover_everything(n, world):
    shares = [shard_indices(n, rank=r, world_size=world) for r in range(world)]
    flat = [i for s in shares for i in s]
    assert sorted(flat) == list(range(n))
    padded = [shard_indices(n, rank=r, world_size=world, pad=True) for r in range(world)]
    assert len({len(p) for p in padded}) == 1  # every rank runs as many steps
    assert [[i for i in p if i < n] for p in padded] == shares


@pytest.mark.parametrize("length", [8, 9])
def test_draw_sampler_ranks_split_the_seeded_draw(length):
    single = DrawSampler(length, seed=5)
    ranks = [DrawSampler(length, seed=5, rank=r, world_size=2) for r in range(2)]
    for epoch in range(3):  # fresh keys every epoch, in step on every rank
        keys = list(single)
        parts = [list(s) for s in ranks]
        assert len(parts[0]) == len(parts[1]) == len(ranks[0]) == -(-length // 2)
        assert not set(parts[0]) & set(parts[1])
        if length % 2 == 0:  # the union is the single-process draw
            assert sorted(parts[0] + parts[1]) == sorted(keys)
            assert parts[0] == keys[0::2] and parts[1] == keys[1::2]
        elif epoch == 0:  # the epoch's draw, plus one more key for the short rank
            assert set(keys) < set(parts[0] + parts[1])


def test_draw_sampler_single_process_sequence_is_unchanged():
    gen = torch.Generator().manual_seed(3)
    expected = torch.randint(0, 2**62, (6,), generator=gen).tolist()
    assert list(DrawSampler(6, seed=3)) == expected
    with pytest.raises(ValueError, match="rank must be in"):
        DrawSampler(6, seed=3, rank=2, world_size=2)


def test_rank_shard_pads_with_ignored_copies():
    data = [{"image": np.full((2, 2), i), "mask": np.full((2, 2), i, np.uint8)} for i in range(3)]
    a, b = RankShard(data, rank=0, world_size=2), RankShard(data, rank=1, world_size=2)
    assert len(a) == len(b) == 2
    assert [int(a[i]["image"][0, 0]) for i in range(2)] == [0, 2]
    assert int(b[0]["mask"][0, 0]) == 1
    pad = b[1]  # index 3 does not exist: a copy of item 0 that scores nothing
    assert (pad["mask"] == IGNORE_INDEX).all() and int(pad["image"][0, 0]) == 0
    assert (data[0]["mask"] == 0).all()  # the original is untouched
    tensors = [{"mask": torch.zeros(2, 2, dtype=torch.long)}]
    assert (RankShard(tensors, rank=1, world_size=2)[0]["mask"] == IGNORE_INDEX).all()


def test_single_process_context_is_a_no_op():
    ctx = setup_distributed(devices=1, num_nodes=1, accelerator="cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed) == (0, 1, False)
    assert ctx.broadcast("x") == "x" and ctx.from_main(lambda: 3) == 3
    assert ctx.main_first(lambda: 4) == 4 and ctx.shard(3) == [0, 1, 2]
    assert (ctx.sum(np.arange(3)) == np.arange(3)).all()


def test_several_processes_need_a_launcher(monkeypatch):
    for var in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="not started by a launcher.*torchrun"):
        setup_distributed(devices=2, num_nodes=1, accelerator="cpu")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="started 3 processes but --devices 2"):
        setup_distributed(devices=2, num_nodes=1, accelerator="cpu")
    with pytest.raises(ValueError, match="unknown strategy 'fsdp'; available strategies: auto"):
        setup_distributed(devices=2, num_nodes=1, accelerator="cpu", strategy="fsdp")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"devices": 0}, "devices must be a whole number >= 1"),
        ({"num_nodes": -1}, "num_nodes must be a whole number >= 1"),
        ({"devices": 1.5}, "devices must be a whole number"),
        ({"strategy": "ddp_spawn"}, "unknown strategy 'ddp_spawn'; available strategies"),
    ],
)
def test_config_refuses_bad_distributed_settings(tiny_synthetic, tmp_path, change, message):
    cfg = TrainConfig(data=str(tiny_synthetic), out=str(tmp_path / "run"), **change)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_torchrun_command_runs_pointseg_in_n_processes():
    cmd = torchrun_command(["train", "data", "--devices", "2"], nproc=2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and cmd[-5:] == [
        "pointseg",
        "train",
        "data",
        "--devices",
        "2",
    ]


def test_cli_refuses_several_nodes_without_a_launcher(
    tiny_synthetic, tmp_path, monkeypatch, capsys
):
    from pointseg.cli import main

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    code = main(["train", str(tiny_synthetic), "--out", str(tmp_path / "r"), "--num-nodes", "2"])
    assert code == 2
    assert "needs a launcher on every node" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- 2 gloo processes

_SETTINGS = {
    "window": 32,
    "model": "unet",
    "model_options": {"base_channels": 4, "depth": 2},
    "batch_size": 4,
    "n_points": 20,
    "n_segments": 30,
    "accelerator": "cpu",
    "seed": 7,
}

#: Runs run_training in each torchrun process and records the window keys each rank draws.
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pointseg.training import TrainConfig, run_training
    from pointseg.training.image_windows import ImageWindowDataset

    keys = []
    read = ImageWindowDataset.__getitem__

    def recording(self, key):
        keys.append(int(key))
        return read(self, key)

    ImageWindowDataset.__getitem__ = recording
    result = run_training(TrainConfig(**json.loads(sys.argv[1])))
    with open(f"{sys.argv[2]}/rank{result.rank}.json", "w") as f:
        json.dump({"keys": keys, "rank": result.rank, "epochs": result.epochs}, f)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("TORCHELASTIC_RUN_ID", None)
    return env


@pytest.mark.slow
def test_ddp_ranks_draw_disjoint_windows_and_metrics_equal_one_process(tiny_synthetic, tmp_path):
    from pointseg.data import FolderDataset
    from pointseg.models.registry import load_model
    from pointseg.predict.evaluate import evaluate_dataset

    script = tmp_path / "train_ddp.py"
    script.write_text(_SCRIPT)
    cfg = {
        **_SETTINGS,
        "data": str(tiny_synthetic),
        "out": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
        "devices": 2,
        "max_epochs": 2,
        "windows_per_epoch": 16,
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
        json.dumps(cfg),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    run = tmp_path / "run"

    # seeded and disjoint: the ranks split each epoch's single-process draw
    epochs = len(read_history(run / "history.csv"))
    assert epochs == 2
    single = DrawSampler(16, seed=7)
    draws = [list(single) for _ in range(epochs)]
    for r in range(2):
        assert ranks[r]["keys"] == [k for d in draws for k in d[r::2]]
    assert not set(ranks[0]["keys"]) & set(ranks[1]["keys"])

    # rank 0 wrote one finished run, in the same layout as a single-process run
    for name in ("model.pt", "metrics.json", "label_stats.json", "config.yaml"):
        assert (run / name).is_file()
    assert not list(tmp_path.glob(".run.run-*"))
    saved = json.loads((run / "metrics.json").read_text())

    # the same weights scored by one process: the same confusion matrix (not averaged)
    model, spec = load_model(run / "model.pt")
    for split in ("val", "test"):
        ds = FolderDataset(tiny_synthetic, split=split)
        one = evaluate_dataset(model, spec, ds, device=torch.device("cpu"))
        assert saved[split]["confusion_matrix"] == one["confusion_matrix"], split
        assert saved[split]["n_pixels"] == sum(r.mask is not None for r in ds.records) * 64 * 64


@pytest.mark.slow
def test_ddp_run_resumes_after_a_kill(tiny_synthetic, tmp_path):
    run = tmp_path / "run"
    args = [
        "-q",
        "train",
        str(tiny_synthetic),
        "--out",
        str(run),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--devices",
        "2",
        "--window",
        "48",
        "--windows-per-epoch",
        "96",
        "--model-options",
        json.dumps(_SETTINGS["model_options"]),
        "--batch-size",
        "4",
        "--n-points",
        "20",
        "--n-segments",
        "30",
        "--accelerator",
        "cpu",
        "--max-epochs",
        "6",
        "--early-stop-patience",
        "20",
    ]
    log = (tmp_path / "killed.log").open("w")
    # `pointseg train --devices 2` starts torchrun itself; its own session is killed whole
    proc = subprocess.Popen(
        [sys.executable, "-m", "pointseg", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_env(),
    )
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not (last.is_file() and len(read_history(run / "history.csv")) >= 2):
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("no checkpoint within 240 s: " + (tmp_path / "killed.log").read_text())
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    log.close()
    before = read_history(run / "history.csv")
    assert not (run / "model.pt").exists(), "the run finished before the kill"
    assert len(before) < 6
    assert len(list(tmp_path.glob(".run.launch-*.yaml"))) == 1  # the killed launch's settings

    done = subprocess.run(
        [sys.executable, "-m", "pointseg", *args, "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    after = read_history(run / "history.csv")
    assert [r["epoch"] for r in after] == list(range(6))

    # the epochs trained before the kill are kept, not trained again
    def kept(rows):
        return [(r["epoch"], r["train_loss"], r["val_miou"], r["seconds"]) for r in rows]

    assert kept(after[: len(before) - 1]) == kept(before[:-1])
    assert (run / "model.pt").is_file() and (run / "metrics.json").is_file()
    assert "rank 0 failed" not in done.stderr
    assert not list(tmp_path.glob(".run.launch-*.yaml"))  # removed by the next launch


def test_dist_context_messages_need_no_group_for_one_process():
    ctx = DistContext()
    assert ctx.is_main and not ctx.distributed
    ctx.barrier()  # no group: nothing to wait for


@pytest.mark.slow
def test_sweep_runs_a_setting_on_two_processes(tiny_synthetic, tmp_path):
    """``pointseg experiment --set devices=2``: each run trains in 2 torchrun processes."""
    import yaml

    from pointseg.cli import main

    path = tmp_path / "one.yaml"
    base = {**_SETTINGS, "data": str(tiny_synthetic), "cache_dir": str(tmp_path / "c")}
    base.update(max_epochs=1, windows_per_epoch=8)
    path.write_text(yaml.safe_dump({"base": base, "grid": {"n_points": [10]}}))
    out = tmp_path / "e"
    assert main(["-q", "experiment", str(path), "--out", str(out), "--set", "devices=2"]) == 0
    (run,) = (out / "runs").iterdir()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["devices"] == 2
    assert json.loads((run / "metrics.json").read_text())["test"]["n_pixels"] > 0
    assert not list((out / "runs").glob(".*launch*"))  # the launch file is removed


def test_launch_refuses_what_rank_0_would_before_starting_processes(
    tiny_synthetic, tmp_path, monkeypatch
):
    """An existing run, a resume of nothing, a changed model: refused here, no torchrun."""
    import pointseg.training.train as train_module
    from pointseg.training import run_training

    def no_launch(cfg):
        raise AssertionError("processes were started")

    monkeypatch.setattr(train_module, "run_in_processes", no_launch)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"x")
    (run / "config.yaml").write_text("model: unet\n")
    cfg = TrainConfig(data=str(tiny_synthetic), out=str(run), window=32, devices=2)
    with pytest.raises(FileExistsError, match="holds a finished run; pass --overwrite"):
        run_training(cfg)
    cfg = TrainConfig(data=str(tiny_synthetic), out=str(tmp_path / "new"), devices=2, resume=True)
    with pytest.raises(ValueError, match="nothing to resume"):
        run_training(cfg)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    cfg = TrainConfig(
        data=str(tiny_synthetic), out=str(run), devices=2, resume=True, model="fcn_resnet50"
    )
    with pytest.raises(ValueError, match="would change model"):
        run_training(cfg)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_ddp_self_training_round_is_shared_by_ranks(tiny_synthetic, tmp_path):
    """Each rank completes its share of the images; the round's counts are summed over ranks."""
    run = tmp_path / "run"
    args = ["-q", "train", str(tiny_synthetic), "--out", str(run), "--devices", "2"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--window", "32", "--windows-per-epoch", "8"]
    args += ["--model-options", json.dumps(_SETTINGS["model_options"]), "--max-epochs", "1"]
    args += ["--n-segments", "30", "--accelerator", "cpu", "--self-train-rounds", "1"]
    args += ["--self-train-threshold", "0.2"]
    done = subprocess.run(
        [sys.executable, "-m", "pointseg", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((run / "self-train" / "round1").glob("*.npy"))
    stats = json.loads((run / "label_stats.json").read_text())["self_train"][0]
    assert len(files) == stats_images(tiny_synthetic)  # both ranks' shares are there
    labels = [np.load(f) for f in files]
    labelled = sum(int((x != IGNORE_INDEX).sum()) for x in labels)
    assert stats["labelled_fraction"] == pytest.approx(labelled / sum(x.size for x in labels))
    assert (run / "history-round1.csv").is_file() and (run / "model.pt").is_file()


def stats_images(root) -> int:
    """Training images of the tiny set (every one gets clicks from its mask)."""
    from pointseg.data import FolderDataset

    return len(FolderDataset(root, split="train"))
