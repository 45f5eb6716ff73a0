"""The annotate app's API: every endpoint, bad inputs, tokens, versions, the saved file."""

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pointseg.annotate import create_app, open_session
from pointseg.points import load_points
from pointseg.training import TrainConfig


@pytest.fixture
def data(tiny_synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    return root


def _client(data, token=None, **settings):
    cfg = TrainConfig(data=str(data), resize=0, superpixels="slic", n_segments=30, **settings)
    session, preview = open_session(cfg)
    return TestClient(create_app(session, preview, token=token)), session


def _add(client, image="0", x=5.5, y=7.2, cls=1, version=0):
    return client.post(
        f"/api/images/{image}/points", json={"x": x, "y": y, "class": cls, "version": version}
    )


def test_state_image_tiles_and_page(data):
    client, _ = _client(data)
    state = client.get("/api/state").json()
    assert [c["name"] for c in state["classes"]][:2] == ["background", "building"]
    assert len(state["images"]) == 20 and state["version"] == 0
    info = client.get("/api/images/0").json()
    assert (info["width"], info["height"], info["levels"]) == (64, 64, 1)
    tile = client.get("/api/images/0/tiles/0/0/0.png")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    for bad in ("/api/images/0/tiles/1/0/0.png", "/api/images/0/tiles/0/1/0.png"):
        assert client.get(bad).status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/static/../session.py").status_code == 404
    assert client.get("/static/secrets.txt").status_code == 404


def test_add_delete_undo_redo_are_saved_at_once(data):
    client, session = _client(data)
    r = _add(client)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "version": 1,
        "point": {"id": "p1", "x": 5, "y": 7, "class": 1, "held_out": False},
    }
    pts, _ = load_points(
        session.points_file,
        images={e.name: e.path for e in session.images},
        image_sizes={e.name: (e.height, e.width) for e in session.images},
        class_names=session.class_names,
    )
    assert pts["scene_0000"].tolist() == [[5, 7, 1]]
    assert _add(client, x=5.9, y=7.9, cls=2, version=1).json()["version"] == 2  # same pixel
    assert [p["class"] for p in client.get("/api/images/0").json()["points"]] == [2]
    pid = client.get("/api/images/0").json()["points"][0]["id"]
    assert client.delete(f"/api/images/0/points/{pid}?version=2").json() == {"version": 3}
    assert "scene_0000" not in session.points_file.read_text()
    assert client.post("/api/undo", json={"version": 3}).json() == {"version": 4, "image_id": "0"}
    assert "scene_0000,5,7,woodland" in session.points_file.read_text()
    assert client.post("/api/redo", json={"version": 4}).json()["version"] == 5
    assert client.post("/api/redo", json={"version": 5}).status_code == 409  # nothing to redo


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"x": -1, "y": 0, "class": 0, "version": 0}, 422),
        ({"x": 64, "y": 0, "class": 0, "version": 0}, 422),
        ({"x": 1, "y": 1, "class": 99, "version": 0}, 422),
        ({"x": 1, "y": 1, "class": -1, "version": 0}, 422),
        ({"x": 1, "y": 1, "class": True, "version": 0}, 422),
        ({"x": "a", "y": 1, "class": 0, "version": 0}, 422),
        ({"x": 1, "y": 1, "class": 0}, 422),
        ({"x": 1, "y": 1, "class": 0, "version": 0, "path": "/etc"}, 422),
        ({"x": 1, "y": 1, "class": 0, "version": 5}, 409),
    ],
)
def test_bad_points_are_refused_with_a_message(data, body, status):
    client, session = _client(data)
    r = client.post("/api/images/0/points", json=body)
    assert r.status_code == status and r.json()["detail"]
    assert session.version == 0 and not session.points_file.exists()


def test_bad_ids_and_bodies(data):
    client, _ = _client(data)
    assert client.get("/api/images/99").status_code == 404
    assert client.get("/api/images/..%2F..%2Fetc").status_code == 404
    assert _add(client, image="99").status_code == 404
    assert client.delete("/api/images/0/points/p1?version=0").status_code == 404
    assert client.delete("/api/images/0/points/p1").status_code == 422
    r = client.post(
        "/api/images/0/points", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert client.post("/api/undo", json={"version": 0}).status_code == 409
    assert client.post("/api/undo", json={}).status_code == 422


def test_a_stale_tab_is_refused_not_merged(data):
    client, session = _client(data)
    assert _add(client, version=0).status_code == 200
    r = _add(client, x=9, version=0)  # a second tab still on version 0
    assert r.status_code == 409 and "another tab" in r.json()["detail"]
    assert len(session.point_array("scene_0000")) == 1


def test_token(data):
    client, _ = _client(data, token="s3cret")
    assert client.get("/api/state").status_code == 401
    assert client.get("/api/state", headers={"X-Token": "wrong"}).status_code == 401
    assert client.get("/api/state", headers={"X-Token": "s3cret"}).status_code == 200
    assert client.get("/api/state?token=s3cret").status_code == 200
    assert client.get("/").status_code == 200  # the page itself carries no data


def test_overlay_shows_the_click_and_boundaries(data):
    client, session = _client(data)
    from io import BytesIO

    from PIL import Image

    empty = np.asarray(Image.open(BytesIO(client.get("/api/images/0/overlay.png").content)))
    assert empty.shape == (64, 64, 4) and (empty[..., 3] == 0).all()
    _add(client, x=30, y=30, cls=3)
    ov = np.asarray(Image.open(BytesIO(client.get("/api/images/0/overlay.png?v=1").content)))
    assert ov[30, 30, 3] == 255 and tuple(ov[30, 30, :3]) == session.class_colors[3]
    b = np.asarray(Image.open(BytesIO(client.get("/api/images/0/boundaries.png").content)))
    assert b.shape == (64, 64, 4) and 0 < (b[..., 3] > 0).mean() < 0.5
