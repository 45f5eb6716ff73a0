"""Tiled prediction of in-memory images: blended tiles equal the whole-image prediction."""

import numpy as np
import pytest
import torch
from torch import nn

from pointseg.models import ModelSpec
from pointseg.predict.tiled import predict_array


def _pointwise(bands=3, classes=4, seed=0):
    torch.manual_seed(seed)
    model = nn.Conv2d(bands, classes, 1)  # translation-equivariant, no context
    spec = ModelSpec(
        name="custom",
        num_classes=classes,
        in_channels=bands,
        mean=[100.0] * bands,
        std=[50.0] * bands,
    )
    return model.eval(), spec


def _whole(model, spec, image):
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return torch.softmax(model((x - mean) / std), dim=1)[0].numpy()


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [((37, 53), 16, 4), ((37, 53), 16, 0), ((20, 9), 64, 8), ((1, 70), 32, 5)],
)
def test_tiles_blend_back_to_the_whole_image_prediction(shape, tile, overlap):
    model, spec = _pointwise()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    probs = predict_array(model, spec, image, tile_size=tile, overlap=overlap, batch_size=3)
    assert probs.shape == (4, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _whole(model, spec, image), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_a_non_square_image_keeps_its_size_and_the_scale_resamples_tiles():
    model, spec = _pointwise(bands=4, classes=2)
    image = np.full((30, 70, 4), 120.0, np.float32)
    probs = predict_array(model, spec, image, tile_size=16, scale=0.5)
    assert probs.shape == (2, 30, 70)
    # a constant image gives one constant prediction, whatever the tiling and resampling
    np.testing.assert_allclose(probs, probs[:, :1, :1] * np.ones((1, 30, 70)), atol=1e-5)


def test_bad_inputs_say_what_is_wrong():
    model, spec = _pointwise()
    with pytest.raises(ValueError, match="height, width, bands"):
        predict_array(model, spec, np.zeros((8, 8)), where="a.png")
    with pytest.raises(ValueError, match="a.png"):
        predict_array(model, spec, np.zeros((8, 8, 4)), where="a.png")
    with pytest.raises(ValueError, match="tile_size"):
        predict_array(model, spec, np.zeros((8, 8, 3)), tile_size=0)
    with pytest.raises(ValueError, match="overlap"):
        predict_array(model, spec, np.zeros((8, 8, 3)), tile_size=8, overlap=8)
