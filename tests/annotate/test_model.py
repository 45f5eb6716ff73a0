"""The model in the annotation loop: training from the API, prediction overlays, proposals."""

import shutil
import time
from io import BytesIO

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pointseg.annotate import create_app, open_session
from pointseg.annotate.model import PageModel
from pointseg.models import ModelSpec, build_model, save_model
from pointseg.points import load_points
from pointseg.training import TrainConfig


@pytest.fixture
def data(tiny_synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    return root


def _random_model(path, class_names, *, in_channels=3, seed=0, image_size=None):
    import torch

    torch.manual_seed(seed)
    spec = ModelSpec(
        name="unet",
        num_classes=len(class_names),
        in_channels=in_channels,
        options={"base_channels": 4},
        class_names=list(class_names),
        class_colors=[[i * 40, 0, 0] for i in range(len(class_names))],
        mean=[100.0] * in_channels,
        std=[50.0] * in_channels,
        image_size=image_size,
    )
    return save_model(path, build_model(spec), spec)


def _app(data, tmp_path, **options):
    cfg = TrainConfig(data=str(data), image_size=64, superpixels="slic", n_segments=40)
    session, preview = open_session(cfg)
    model = PageModel(session, preview, cfg, runs_dir=tmp_path / "runs", **options)
    return TestClient(create_app(session, preview, model=model)), session, model


def _click_from_masks(client, session, data, images, per_image=5, seed=0):
    rng = np.random.default_rng(seed)
    version = session.version
    for e in session.images[:images]:
        mask = np.asarray(Image.open(data / "masks" / f"{e.name}.png"))
        for _ in range(per_image):
            x, y = (int(v) for v in rng.integers(0, 64, 2))
            body = {"x": float(x), "y": float(y), "class": int(mask[y, x]), "version": version}
            r = client.post(f"/api/images/{e.id}/points", json=body)
            assert r.status_code == 200, r.text
            version = r.json()["version"]


def _saved_points(session):
    pts, _ = load_points(
        session.points_file,
        images={e.name: e.path for e in session.images},
        image_sizes={e.name: (e.height, e.width) for e in session.images},
        class_names=session.class_names,
    )
    return pts


def test_training_from_the_api_gives_a_prediction_overlay_and_proposals(data, tmp_path):
    client, session, _ = _app(data, tmp_path, epochs=2, k=6)
    assert client.get("/api/model").json()["state"] == "idle"
    r = client.post("/api/model/train", json={})
    assert r.status_code == 422 and "no clicks" in r.json()["detail"]
    _click_from_masks(client, session, data, images=1)
    r = client.post("/api/model/train", json={})
    assert r.status_code == 422 and "at least 2 images" in r.json()["detail"]
    assert client.get("/api/images/0/prediction.png").status_code == 409
    assert client.get("/api/proposals").status_code == 409

    _click_from_masks(client, session, data, images=5, seed=1)
    r = client.post("/api/model/train", json={})
    assert r.status_code == 202 and r.json()["state"] == "running", r.text
    assert client.post("/api/model/train", json={}).status_code == 409  # one at a time
    before = session.version
    _click_from_masks(client, session, data, images=1, per_image=1, seed=9)  # keeps clicking
    assert session.version == before + 1
    deadline = time.monotonic() + 240
    while (status := client.get("/api/model").json())["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "done", status
    assert status["model_version"] == 1 and status["epoch"] == 2 and status["max_epochs"] == 2
    job = tmp_path / "runs" / "job-1"
    assert (job / "run" / "model.pt").is_file() and (job / "split.yaml").is_file()
    assert client.get("/api/state").json()["model"]["model_version"] == 1

    png = client.get("/api/images/0/prediction.png?m=1")
    assert png.status_code == 200
    overlay = np.asarray(Image.open(BytesIO(png.content)))
    assert overlay.shape == (64, 64, 4) and (overlay[..., 3] == 255).all()  # every pixel

    found = client.get("/api/proposals?k=6").json()
    assert found["strategy"] == "entropy" and found["model_version"] == 1
    props = found["proposals"]
    assert len(props) == 6
    clicked = _saved_points(session)
    for p in props:
        e = session.entry(p["image"])
        assert 0 <= p["x"] < e.width and 0 <= p["y"] < e.height
        assert [p["x"], p["y"]] not in clicked.get(e.name, np.zeros((0, 3))).tolist()

    # confirming a proposal is an ordinary click: it lands in the points file
    first = props[0]
    body = {"x": float(first["x"]), "y": float(first["y"]), "class": 2, "version": session.version}
    assert client.post(f"/api/images/{first['image']}/points", json=body).status_code == 200
    name = session.entry(first["image"]).name
    assert [first["x"], first["y"], 2] in _saved_points(session)[name].tolist()
    # a skipped proposal is not proposed again
    second = props[1]
    r = client.post("/api/proposals/skip", json={k: second[k] for k in ("image", "x", "y")})
    assert r.json() == {"skipped": 1}
    again = client.get("/api/proposals?k=6").json()["proposals"]
    spots = {(p["image"], p["x"], p["y"]) for p in again}
    assert (first["image"], first["x"], first["y"]) not in spots
    assert (second["image"], second["x"], second["y"]) not in spots


def test_stop_ends_the_training_process(data, tmp_path):
    client, session, model = _app(data, tmp_path, epochs=200)
    _click_from_masks(client, session, data, images=4)
    assert client.post("/api/model/stop", json={}).status_code == 409
    assert client.post("/api/model/train", json={}).status_code == 202
    proc = model._proc
    r = client.post("/api/model/stop", json={})
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert proc.poll() is not None  # the process is gone
    assert client.get("/api/model").json()["model_version"] == 0
    assert client.post("/api/model/stop", json={}).status_code == 409


def test_a_given_model_predicts_and_proposes_at_once(data, tmp_path):
    cfg = TrainConfig(data=str(data), image_size=64, superpixels="slic", n_segments=40)
    session, preview = open_session(cfg)
    path = _random_model(tmp_path / "m.pt", session.class_names, image_size=32)
    for strategy in ("random", "entropy", "margin", "disagreement"):
        model = PageModel(
            session, preview, cfg, runs_dir=tmp_path / "runs", model_path=path, strategy=strategy
        )
        client = TestClient(create_app(session, preview, model=model))
        status = client.get("/api/model").json()
        assert status["state"] == "done" and status["model_version"] == 1
        assert client.get("/api/images/3/prediction.png").status_code == 200
        if strategy == "disagreement":  # needs clicks to disagree with
            session.add_point("0", 10, 10, 1, version=session.version)
        props = client.get("/api/proposals?k=4").json()["proposals"]
        assert len(props) == 4, strategy
        for p in props:
            assert set(p) == {"image", "x", "y", "score", "predicted"}
            assert 0 <= p["predicted"] < len(session.class_names)


def test_models_that_do_not_fit_the_session_are_refused(data, tmp_path):
    cfg = TrainConfig(data=str(data), image_size=64, superpixels="slic", n_segments=40)
    session, preview = open_session(cfg)
    wrong_classes = _random_model(tmp_path / "a.pt", ["x", "y"])
    with pytest.raises(ValueError, match="classes"):
        PageModel(session, preview, cfg, runs_dir=tmp_path, model_path=wrong_classes)
    wrong_bands = _random_model(tmp_path / "b.pt", session.class_names, in_channels=4)
    with pytest.raises(ValueError, match="--bands"):
        PageModel(session, preview, cfg, runs_dir=tmp_path, model_path=wrong_bands)
    with pytest.raises(ValueError, match="entropy"):  # an unknown strategy lists the valid ones
        PageModel(session, preview, cfg, runs_dir=tmp_path, strategy="smart")


def test_large_rasters_get_prediction_tiles_and_proposals_in_view(raster_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(raster_data, data)
    cfg = TrainConfig(
        data=str(data),
        dataset="rasters",
        dataset_options={"block_size": 512, "margin": 32},
        image_size=128,
        superpixels="slic",
        n_segments=40,
    )
    session, preview = open_session(cfg)
    path = _random_model(tmp_path / "m.pt", session.class_names)
    model = PageModel(session, preview, cfg, runs_dir=tmp_path / "runs", model_path=path)
    client = TestClient(create_app(session, preview, model=model))
    session.add_point("0", 100, 100, 1, version=session.version)
    assert client.get("/api/images/0/prediction.png").status_code == 404  # tiles instead
    tile = client.get("/api/images/0/prediction/0/1/2.png")
    assert tile.status_code == 200 and "x-pointseg-note" not in tile.headers
    rgba = np.asarray(Image.open(BytesIO(tile.content)))
    assert rgba.shape == (256, 256, 4) and (rgba[..., 3] == 255).all()
    # the same pixels at level 1 (every second one) come from the same cached blocks
    coarse = np.asarray(
        Image.open(BytesIO(client.get("/api/images/0/prediction/1/0/1.png").content))
    )
    assert (coarse[:128, 128:256] == rgba[::2, ::2]).all()
    assert client.get("/api/images/0/prediction/9/0/0.png").status_code == 404
    r = client.get("/api/proposals?k=5")
    assert r.status_code == 422 and "view" in r.json()["detail"]
    r = client.get("/api/proposals?k=5&image=0&x0=0&y0=0&x1=600&y1=500")
    assert r.status_code == 200, r.text
    props = r.json()["proposals"]
    assert len(props) == 5
    assert all(0 <= p["x"] < 600 and 0 <= p["y"] < 500 for p in props)  # inside the view
    xy = np.array([(p["x"], p["y"]) for p in props], float)
    gaps = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))[np.triu_indices(5, 1)]
    assert gaps.min() >= 0.5 * np.sqrt(600 * 500 / 5)  # spread over the view
    assert (100, 100) not in {(p["x"], p["y"]) for p in props}
    r = client.get("/api/proposals?k=5&image=0&x0=5000&y0=0&x1=6000&y1=500")
    assert r.status_code == 422 and "outside" in r.json()["detail"]


def test_a_failed_training_is_reported_with_its_reason(data, tmp_path, monkeypatch):
    from dataclasses import replace

    import pointseg.annotate.model as page

    real = page.page_train_config
    monkeypatch.setattr(
        page,
        "page_train_config",
        lambda cfg, **kw: replace(real(cfg, **kw), model_options={"no_such_option": 1}),
    )
    client, session, _ = _app(data, tmp_path)
    _click_from_masks(client, session, data, images=3)
    assert client.post("/api/model/train", json={}).status_code == 202
    deadline = time.monotonic() + 120
    while (status := client.get("/api/model").json())["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "failed" and status["model_version"] == 0
    assert "no_such_option" in status["message"] and "train.log" in status["message"]
    assert client.get("/api/images/0/prediction.png").status_code == 409
