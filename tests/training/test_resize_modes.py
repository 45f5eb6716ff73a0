"""Whole-image resizing as an explicit mode: squash or letterbox."""

from __future__ import annotations

import numpy as np
import torch

from pointseg.constants import IGNORE_INDEX
from pointseg.data.registry import get_dataset
from pointseg.data.synthetic import make_mosaic_dataset
from pointseg.data.transforms import letterbox_shape
from pointseg.models.registry import ModelSpec
from pointseg.predict.inference import predict_logits
from pointseg.training.data import prepare_split, training_view, view_labels


def test_letterbox_keeps_the_aspect_and_pads_labels_with_ignore():
    image = np.full((50, 200, 3), 7, np.uint8)
    points = np.array([[199, 49, 2], [0, 0, 1]])
    view, pts = training_view(image, points, image_size=64, mode="letterbox")
    assert letterbox_shape((50, 200), 64) == (16, 64)
    assert view.shape == (64, 64, 3)
    assert (view[:16] == 7).all() and (view[16:] == 0).all()
    assert pts.tolist() == [[63, 15, 2], [0, 0, 1]]
    labels = view_labels(np.ones((50, 200), np.uint8), image_size=64, mode="letterbox")
    assert (labels[:16] == 1).all() and (labels[16:] == IGNORE_INDEX).all()
    squash, _ = training_view(image, points, image_size=64)
    assert squash.shape == (64, 64, 3) and (squash == 7).all()


def test_letterbox_split_targets_ignore_the_padding(tmp_path):
    root = make_mosaic_dataset(tmp_path / "d", shapes=[(60, 180), (150, 100)], tile=64)
    ds = get_dataset("folder", root=root, split=None)
    split = prepare_split(
        ds, target="pseudo", image_size=48, n_classes=5, n_points=20, resize_mode="letterbox"
    )
    assert split.targets.shape == (2, 48, 48)
    assert (split.targets[0, 16:] == IGNORE_INDEX).all()  # 60x180 -> 16x48 at the top
    assert (split.targets[1, :, 32:] == IGNORE_INDEX).all()  # 150x100 -> 48x32 on the left
    assert (split.masks[0, 16:] == IGNORE_INDEX).all()
    assert (split.targets[0, :16] != IGNORE_INDEX).any()


class _Probe(torch.nn.Module):
    """Records its input; predicts class 1 where the input's first band is above 0."""

    def forward(self, x):
        self.seen = x.clone()
        return torch.stack([-x[:, 0], x[:, 0]], 1)


def test_letterbox_prediction_sees_the_training_geometry():
    spec = ModelSpec(
        name="probe",
        num_classes=2,
        in_channels=1,
        mean=[10.0],
        std=[1.0],
        image_size=32,
        resize_mode="letterbox",
    )
    image = np.full((20, 80, 1), 30.0, np.float32)
    model = _Probe()
    logits = predict_logits(model, spec, image, device=torch.device("cpu"))
    assert logits.shape == (2, 20, 80)
    assert model.seen.shape == (1, 1, 32, 32)
    assert torch.allclose(model.seen[0, 0, :8], torch.tensor(20.0))  # the image: (30-10)/1
    assert torch.allclose(model.seen[0, 0, 8:], torch.tensor(-10.0))  # padding: source zeros
    assert (logits.argmax(0) == 1).all()
