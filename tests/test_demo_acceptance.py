"""The demo at its defaults: point supervision reaches >= 85 % of the fully supervised mIoU.

This is the whole ``make demo`` pipeline (120 synthetic scenes, two trainings); it takes a few
minutes on 2 CPU cores and runs in CI.
"""

import json

import pytest

from pointseg.cli import main


@pytest.mark.slow
def test_demo_defaults_point_supervision_reaches_85_percent(tmp_path):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out), "--accelerator", "cpu"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["settings"]["n_points"] == 50
    assert summary["test_miou_full"] > 0.9
    assert summary["miou_ratio"] >= 0.85, summary["miou_ratio"]
    assert (out / "report.md").is_file()
