"""`pointseg annotate` refuses bad settings before serving: one line, exit 2."""

import shutil
import socket

import pytest

from pointseg.cli import main


@pytest.fixture
def data(tiny_synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    return root


def _cases(data, tmp_path, busy_port):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "missing data": ([str(tmp_path / "nope")], "does not exist"),
        "gpkg for plain images": ([str(data), "--points", str(tmp_path / "p.gpkg")], ".csv"),
        "folder as points file": ([str(data), "--points", str(folder)], "folder"),
        "remote without the flag": ([str(data), "--host", "0.0.0.0"], "--allow-remote"),
        "port in use": ([str(data), "--port", str(busy_port)], "choose another --port"),
        "bad port": ([str(data), "--port", "70000"], "--port"),
        "unknown superpixels": ([str(data), "--superpixels", "nope"], "available"),
        "bad class file": ([str(data), "--classes", str(tmp_path / "none.yaml")], "none.yaml"),
        "unknown strategy": ([str(data), "--proposal-strategy", "smart"], "entropy"),
        "missing model": ([str(data), "--model", str(tmp_path / "m.pt")], "m.pt"),
        "not a model": ([str(data), "--model", str(data / "classes.yaml")], "classes.yaml"),
        "no proposals": ([str(data), "--proposals", "0"], "--proposals"),
        "no epochs": ([str(data), "--train-epochs", "0"], "--train-epochs"),
        "bad seconds": ([str(data), "--train-seconds", "-1"], "--train-seconds"),
        "runs is a file": ([str(data), "--runs", str(data / "classes.yaml")], "--runs folder"),
    }


def test_bad_settings_are_one_line_and_serve_nothing(data, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        for what, (argv, text) in _cases(data, tmp_path, busy.getsockname()[1]).items():
            assert main(["-q", "annotate", *argv]) == 2, what
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and text in err, (what, err)
            assert "Traceback" not in err
    assert not (data / "points.csv").exists()
