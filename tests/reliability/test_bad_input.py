"""Bad input for every command: exit status 2, one line on stderr, no traceback, no output.

Each case builds its broken input in ``tmp_path`` and runs ``pointseg.cli.main`` in this
process; a few run the real entry point in a subprocess. After a failure no file may appear
(or change) under a final name: not in ``tmp_path`` (where every output goes) and not in the
session's shared data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

# ----------------------------------------------------------------------------- inputs


def _garbage(path: Path, n: int = 4096, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def _truncated(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


FRENCH = ["arrière-plan", "bâtiment", "forêt", "eau", "route"]


@dataclass
class Ctx:
    """What a case builds its command line from."""

    env: object
    tmp: Path
    request: pytest.FixtureRequest

    @property
    def data(self) -> str:
        return str(self.env.data)

    @property
    def model(self) -> str:
        return str(self.env.model)

    @property
    def ro(self) -> str:
        """A read-only output path (skips the case where it is writable)."""
        return str(self.request.getfixturevalue("read_only_out"))

    def out(self, name: str = "out") -> str:
        return str(self.tmp / name)

    def train(self, *extra: str, data: str | None = None) -> list[str]:
        return [
            "train",
            data or self.data,
            "--out",
            self.out("run"),
            *self.env.train_args(),
            *extra,
        ]

    def existing_dir(self, name: str = "occupied") -> str:
        d = self.tmp / name
        d.mkdir()
        (d / "keep.txt").write_text("mine\n")
        return str(d)

    def a_file(self, name: str = "a_file") -> str:
        p = self.tmp / name
        p.write_text("mine\n")
        return str(p)

    def data_copy(self) -> Path:
        return Path(shutil.copytree(self.env.data, self.tmp / "data"))

    def garbage_png_data(self) -> str:
        data = self.data_copy()
        _garbage(data / "images" / "scene_0000.png")
        return str(data)

    def mixed_band_data(self) -> str:
        from PIL import Image

        data = self.data_copy()
        path = data / "images" / "scene_0001.png"
        Image.open(path).convert("L").save(path)  # 1 band among 3-band scenes
        return str(data)

    def points_csv(self, text: str, *, name: str = "points.csv", encoding: str = "utf-8") -> str:
        p = self.tmp / name
        p.write_bytes(text.encode(encoding))
        return str(p)

    def french_classes(self) -> str:
        spec = yaml.safe_load((self.env.data / "classes.yaml").read_text())
        for entry, name in zip(spec["classes"], FRENCH, strict=True):
            entry["name"] = name
        spec["background"] = FRENCH[0]
        p = self.tmp / "classes_fr.yaml"
        p.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
        return str(p)

    def french_points(self) -> str:
        rows = ["image,x,y,class"]
        for i in range(12):
            for j, name in enumerate(FRENCH):
                rows.append(f"scene_{i:04d},{5 + 7 * j},{5 + 7 * j},{name}")
        return "\n".join(rows) + "\n"

    def polygons_geojson(self) -> str:
        features = [
            {
                "type": "Feature",
                "properties": {"image": f"scene_{i:04d}", "class": "building"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[2, 2], [20, 2], [20, 20], [2, 20], [2, 2]]],
                },
            }
            for i in range(12)
        ]
        p = self.tmp / "polygons.geojson"
        p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        return str(p)

    def points_geojson(self) -> str:
        features = [
            {
                "type": "Feature",
                "properties": {"image": f"scene_{i:04d}", "class": "building"},
                "geometry": {"type": "Point", "coordinates": [10, 10]},
            }
            for i in range(12)
        ]
        return json.dumps({"type": "FeatureCollection", "features": features})

    def outside_points(self) -> str:
        rows = ["image,x,y,class"]
        rows += [f"scene_{i:04d},{100 + i},{200 + i},building" for i in range(12)]
        return self.points_csv("\n".join(rows) + "\n")

    def bad_class_file(self) -> str:
        spec = yaml.safe_load((self.env.data / "classes.yaml").read_text())
        spec["ignore_value"] = [255]  # typo of ignore_values
        p = self.tmp / "classes_bad.yaml"
        p.write_text(yaml.safe_dump(spec))
        return str(p)

    def sweep(self, *, base_extra: dict | None = None, top_extra: dict | None = None) -> str:
        spec = {
            "name": "bad",
            "out": str(self.tmp / "sweep"),
            "base": {
                "data": self.data,
                "image_size": 32,
                "model_options": {"base_channels": 4, "depth": 2},
                "batch_size": 4,
                "max_epochs": 1,
                "n_segments": 30,
                "accelerator": "cpu",
                "cache_dir": str(self.env.cache),
                **(base_extra or {}),
            },
            "grid": {"seed": [0]},
            **(top_extra or {}),
        }
        p = self.tmp / "sweep.yaml"
        p.write_text(yaml.safe_dump(spec))
        return str(p)

    def truncated_tif(self) -> str:
        return str(_truncated(self.env.raster / "images" / "scene.tif", self.tmp / "cut.tif"))

    def truncated_raster_dir(self) -> str:
        root = Path(shutil.copytree(self.env.raster, self.tmp / "raster"))
        _truncated(self.env.raster / "images" / "scene.tif", root / "images" / "scene.tif")
        return str(root)

    def truncated_model(self) -> str:
        return str(_truncated(self.env.model, self.tmp / "model.pt"))

    def random_model(self) -> str:
        return str(_garbage(self.tmp / "model.pt", 8192))

    def garbage_onnx(self) -> str:
        return str(_garbage(self.tmp / "model.onnx", 8192))

    def image_folder(self) -> str:
        d = self.tmp / "images"
        d.mkdir()
        for name in ("scene_0000.png", "scene_0001.png"):
            shutil.copy(self.env.data / "images" / name, d / name)
        return str(d)

    def mixed_band_folder(self) -> str:
        from PIL import Image

        d = Path(self.image_folder())
        Image.open(d / "scene_0001.png").convert("L").save(d / "scene_0001.png")
        return str(d)


#: name -> builder(ctx) -> argv or (argv, words the error line must contain)
CASES: dict[str, Callable[[Ctx], list[str] | tuple[list[str], list[str]]]] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


# --------------------------------------------------------------------- train: point files


@case("train-points-empty-csv")
def _(c: Ctx):
    return c.train("--points", c.points_csv("")), ["point"]


@case("train-points-header-only-csv")
def _(c: Ctx):
    return c.train("--points", c.points_csv("image,x,y,class\n")), ["point"]


@case("train-points-csv-no-header")
def _(c: Ctx):
    rows = "".join(f"scene_{i:04d},10,10,building\n" for i in range(12))
    return c.train("--points", c.points_csv(rows))


@case("train-points-csv-wrong-columns")
def _(c: Ctx):
    rows = "name,col,row,label\n" + "".join(f"scene_{i:04d},10,10,building\n" for i in range(12))
    return c.train("--points", c.points_csv(rows))


@case("train-points-csv-latin1-non-ascii")
def _(c: Ctx):
    pts = c.points_csv(c.french_points(), encoding="latin-1")
    return c.train("--points", pts, "--classes", c.french_classes()), ["UTF-8", "points.csv"]


@case("train-points-geojson-polygons")
def _(c: Ctx):
    return c.train("--points", c.polygons_geojson()), ["polygon"]


@case("train-points-geojson-not-json")
def _(c: Ctx):
    return c.train("--points", c.points_csv("image,x,y,class\n", name="p.geojson"))


@case("train-points-geojson-truncated")
def _(c: Ctx):
    text = c.points_geojson()
    return c.train("--points", c.points_csv(text[: len(text) // 2], name="p.geojson"))


@case("train-points-gpkg-garbage")
def _(c: Ctx):
    # on the georeferenced rasters, so that the GeoPackage itself is what fails
    raster = c.env.raster
    gpkg = str(_garbage(c.tmp / "points.gpkg"))
    argv = c.train("--dataset", "rasters", "--points", gpkg, data=str(raster / "images"))
    return [*argv, "--classes", str(raster / "classes.yaml")]


@case("train-points-txt")
def _(c: Ctx):
    return c.train("--points", c.points_csv("image,x,y,class\nscene_0000,1,1,0\n", name="p.txt"))


@case("train-points-folder")
def _(c: Ctx):
    return c.train("--points", c.existing_dir("points.csv"))


@case("train-points-all-outside")
def _(c: Ctx):
    return c.train("--points", c.outside_points()), ["outside"]


@case("train-rasters-points-geojson-polygons")
def _(c: Ctx):
    # on rasters a GeoJSON is in map coordinates: polygons there label nothing either
    raster = c.env.raster
    features = [
        {
            "type": "Feature",
            "properties": {"class": 1},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[21.0, 52.23], [21.01, 52.23], [21.01, 52.24], [21.0, 52.23]]],
            },
        }
    ]
    p = c.tmp / "polygons.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    argv = c.train("--dataset", "rasters", "--points", str(p), data=str(raster / "images"))
    return [*argv, "--classes", str(raster / "classes.yaml")], ["polygon"]


# ------------------------------------------------------------------ train: images, options


@case("train-image-png-garbage")
def _(c: Ctx):
    return c.train(data=c.garbage_png_data())


@case("train-rasters-tif-truncated")
def _(c: Ctx):
    root = Path(c.truncated_raster_dir())
    argv = c.train("--dataset", "rasters", "--points", str(root / "points.geojson"))
    argv[1] = str(root / "images")
    return [*argv, "--classes", str(root / "classes.yaml")]


@case("train-mixed-band-counts")
def _(c: Ctx):
    return c.train(data=c.mixed_band_data())


@case("train-bands-out-of-range")
def _(c: Ctx):
    return c.train("--bands", "0,9")


@case("train-model-options-typo")
def _(c: Ctx):
    return c.train("--model-options", '{"base_chanels": 8}'), ["base_chanels"]


@case("train-loss-options-unknown")
def _(c: Ctx):
    return c.train("--loss-options", '{"foo": 1}'), ["foo"]


@case("train-model-unknown")
def _(c: Ctx):
    return c.train("--model", "nope"), ["nope"]


@case("train-n-segments-zero")
def _(c: Ctx):
    return c.train("--n-segments", "0")


@case("train-fractions-bad")
def _(c: Ctx):
    return c.train("--fractions", "0.5", "0.5", "0.5")


@case("train-dataset-option-unknown")
def _(c: Ctx):
    return c.train("--dataset-option", "nope=1"), ["nope"]


@case("train-option-abbreviation")
def _(c: Ctx):
    return c.train("--max-epoch", "2")


@case("train-config-unknown-key")
def _(c: Ctx):
    cfg = c.tmp / "bad.yaml"
    cfg.write_text("max_epoch: 2\n")
    return ["train", "--config", str(cfg), *c.train()[1:]], ["max_epoch"]


@case("train-class-file-unknown-key")
def _(c: Ctx):
    return c.train("--classes", c.bad_class_file()), ["ignore_value"]


@case("train-weights-missing")
def _(c: Ctx):
    return c.train("--weights", str(c.tmp / "nowhere.pt"))


@case("train-weights-garbage")
def _(c: Ctx):
    return c.train("--weights", c.random_model())


@case("train-accelerator-cuda-fresh-out")
def _(c: Ctx):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    return c.train("--accelerator", "cuda")


@case("train-out-is-a-file")
def _(c: Ctx):
    argv = c.train()
    argv[argv.index("--out") + 1] = c.a_file()
    return argv


@case("train-out-read-only")
def _(c: Ctx):
    argv = c.train()
    argv[argv.index("--out") + 1] = c.ro
    return argv


# ------------------------------------------------------------------------------ predict


def _predict(c: Ctx, model: str, source: str, *extra: str) -> list[str]:
    return ["predict", model, source, "--out", c.out("pred"), *extra]


@case("predict-model-random-bytes")
def _(c: Ctx):
    return _predict(c, c.random_model(), c.image_folder())


@case("predict-model-truncated")
def _(c: Ctx):
    return _predict(c, c.truncated_model(), c.image_folder())


@case("predict-onnx-garbage")
def _(c: Ctx):
    return _predict(c, c.garbage_onnx(), c.image_folder())


@case("predict-model-is-a-folder")
def _(c: Ctx):
    return _predict(c, c.existing_dir("model.pt"), c.image_folder())


@case("predict-image-png-garbage")
def _(c: Ctx):
    return _predict(c, c.model, str(_garbage(c.tmp / "scene.png")))


@case("predict-tif-truncated")
def _(c: Ctx):
    return _predict(c, c.model, c.truncated_tif())


@case("predict-tiled-tif-truncated")
def _(c: Ctx):
    return _predict(c, c.model, c.truncated_tif(), "--tiled", "--tile-size", "64")


@case("predict-3band-model-on-4band-tif")
def _(c: Ctx):
    return _predict(c, c.model, str(c.env.tif4)), ["band"]


@case("predict-tiled-3band-model-on-4band-tif")
def _(c: Ctx):
    return _predict(c, c.model, str(c.env.tif4), "--tiled", "--tile-size", "32"), ["band"]


@case("predict-folder-mixed-band-counts")
def _(c: Ctx):
    return _predict(c, c.model, c.mixed_band_folder()), ["band"]


@case("predict-bands-out-of-range")
def _(c: Ctx):
    return _predict(c, c.model, c.image_folder(), "--bands", "0,9")


@case("predict-out-is-a-file")
def _(c: Ctx):
    return ["predict", c.model, c.image_folder(), "--out", c.a_file()]


@case("predict-out-read-only")
def _(c: Ctx):
    return ["predict", c.model, c.image_folder(), "--out", c.ro]


@case("predict-option-abbreviation")
def _(c: Ctx):
    return _predict(c, c.model, str(c.env.tif4), "--tiled", "--tile-s", "64")


@case("predict-tile-size-too-small")
def _(c: Ctx):
    source = str(c.env.raster / "images" / "scene.tif")
    return _predict(c, c.model, source, "--tiled", "--tile-size", "8")


# ----------------------------------------------------------------------------- evaluate


def _evaluate(c: Ctx, *extra: str, model: str | None = None, data: str | None = None):
    return ["evaluate", model or c.model, data or c.data, *extra]


@case("evaluate-out-existing-folder")
def _(c: Ctx):
    return _evaluate(c, "--out", c.existing_dir())


@case("evaluate-out-read-only")
def _(c: Ctx):
    return _evaluate(c, "--out", str(Path(c.ro) / "m.json"))


@case("evaluate-model-random-bytes")
def _(c: Ctx):
    return _evaluate(c, "--out", c.out("m.json"), model=c.random_model())


@case("evaluate-model-truncated")
def _(c: Ctx):
    return _evaluate(c, "--out", c.out("m.json"), model=c.truncated_model())


@case("evaluate-model-onnx-garbage")
def _(c: Ctx):
    return _evaluate(c, "--out", c.out("m.json"), model=c.garbage_onnx())


@case("evaluate-3band-model-on-4band-data")
def _(c: Ctx):
    return _evaluate(c, "--out", c.out("m.json"), data=str(c.env.data4)), ["band"]


@case("evaluate-image-png-garbage")
def _(c: Ctx):
    return _evaluate(c, "--split", "all", "--out", c.out("m.json"), data=c.garbage_png_data())


@case("evaluate-mixed-band-counts")
def _(c: Ctx):
    return _evaluate(c, "--split", "all", "--out", c.out("m.json"), data=c.mixed_band_data())


@case("evaluate-bands-out-of-range")
def _(c: Ctx):
    return _evaluate(c, "--bands", "0,9", "--out", c.out("m.json"))


@case("evaluate-fractions-bad")
def _(c: Ctx):
    return _evaluate(c, "--fractions", "0.5", "0.5", "0.5", "--out", c.out("m.json"))


@case("evaluate-dataset-option-unknown")
def _(c: Ctx):
    return _evaluate(c, "--dataset-option", "nope=1", "--out", c.out("m.json")), ["nope"]


@case("evaluate-class-file-unknown-key")
def _(c: Ctx):
    return _evaluate(c, "--classes", c.bad_class_file(), "--out", c.out("m.json"))


@case("evaluate-option-abbreviation")
def _(c: Ctx):
    return _evaluate(c, "--spl", "all", "--out", c.out("m.json"))


# ------------------------------------------------------------------------------- export


@case("export-out-existing-folder")
def _(c: Ctx):
    return ["export", c.model, c.existing_dir("model.onnx")]


@case("export-out-read-only")
def _(c: Ctx):
    return ["export", c.model, str(Path(c.ro) / "model.onnx")]


@case("export-model-random-bytes")
def _(c: Ctx):
    return ["export", c.random_model(), c.out("model.onnx")]


@case("export-model-truncated")
def _(c: Ctx):
    return ["export", c.truncated_model(), c.out("model.onnx")]


@case("export-model-onnx-garbage")
def _(c: Ctx):
    return ["export", c.garbage_onnx(), c.out("out.onnx")]


@case("export-run-folder-without-model")
def _(c: Ctx):
    return ["export", c.existing_dir("run"), c.out("model.onnx")]


@case("export-opset-bad")
def _(c: Ctx):
    return ["export", c.model, c.out("model.onnx"), "--opset", "3"]


@case("export-option-abbreviation")
def _(c: Ctx):
    return ["export", c.model, c.out("model.onnx"), "--fixed", "32", "32"]


# ------------------------------------------------------------------------------- points


def _points(c: Ctx, *extra: str, data: str | None = None) -> list[str]:
    return ["points", data or c.data, "--out", c.out("points.csv"), *extra]


@case("points-out-existing-folder")
def _(c: Ctx):
    return ["points", c.data, "--out", c.existing_dir()]


@case("points-out-read-only")
def _(c: Ctx):
    return ["points", c.data, "--out", str(Path(c.ro) / "points.csv")]


@case("points-bands-out-of-range")
def _(c: Ctx):
    return _points(c, "--bands", "0,9")


@case("points-fractions-bad")
def _(c: Ctx):
    return _points(c, "--fractions", "0.5", "0.5", "0.5")


@case("points-scheme-unknown")
def _(c: Ctx):
    return _points(c, "--scheme", "nope"), ["nope"]


@case("points-n-points-zero")
def _(c: Ctx):
    return _points(c, "--n-points", "0")


@case("points-class-file-unknown-key")
def _(c: Ctx):
    return _points(c, "--classes", c.bad_class_file()), ["ignore_value"]


@case("points-dataset-option-unknown")
def _(c: Ctx):
    return _points(c, "--dataset-option", "nope=1"), ["nope"]


@case("points-image-png-garbage")
def _(c: Ctx):
    return _points(c, data=c.garbage_png_data())


@case("points-option-abbreviation")
def _(c: Ctx):
    return _points(c, "--n-point", "5")


# ------------------------------------------------------------------------- pseudolabels


def _pseudo(c: Ctx, *extra: str, data: str | None = None) -> list[str]:
    return [
        "pseudolabels",
        data or c.data,
        "--out",
        c.out("pl"),
        "--image-size",
        "32",
        "--n-segments",
        "30",
        *extra,
    ]


@case("pseudolabels-points-geojson-not-json")
def _(c: Ctx):
    return _pseudo(c, "--points", c.points_csv("{not json", name="p.geojson"))


@case("pseudolabels-points-geojson-polygons")
def _(c: Ctx):
    return _pseudo(c, "--points", c.polygons_geojson()), ["polygon"]


@case("pseudolabels-points-empty-csv")
def _(c: Ctx):
    return _pseudo(c, "--points", c.points_csv("")), ["point"]


@case("pseudolabels-points-folder")
def _(c: Ctx):
    return _pseudo(c, "--points", c.existing_dir("points.csv"))


@case("pseudolabels-points-all-outside")
def _(c: Ctx):
    return _pseudo(c, "--points", c.outside_points()), ["outside"]


@case("pseudolabels-out-is-a-file")
def _(c: Ctx):
    argv = _pseudo(c)
    argv[argv.index("--out") + 1] = c.a_file()
    return argv


@case("pseudolabels-out-read-only")
def _(c: Ctx):
    argv = _pseudo(c)
    argv[argv.index("--out") + 1] = c.ro
    return argv


@case("pseudolabels-n-segments-zero")
def _(c: Ctx):
    return _pseudo(c, "--n-segments", "0")


@case("pseudolabels-superpixels-unknown")
def _(c: Ctx):
    return _pseudo(c, "--superpixels", "nope"), ["nope"]


@case("pseudolabels-image-png-garbage")
def _(c: Ctx):
    return _pseudo(c, "--split", "all", data=c.garbage_png_data())


# -------------------------------------------------------------------------- superpixels


def _superpixels(c: Ctx, *extra: str) -> list[str]:
    return ["superpixels", c.data, "--counts", "30", "--max-images", "2", *extra]


@case("superpixels-csv-existing-folder")
def _(c: Ctx):
    return _superpixels(c, "--csv", c.existing_dir())


@case("superpixels-overlays-is-a-file")
def _(c: Ctx):
    return _superpixels(c, "--overlays", c.a_file())


@case("superpixels-csv-read-only")
def _(c: Ctx):
    return _superpixels(c, "--csv", str(Path(c.ro) / "sp.csv"))


@case("superpixels-method-unknown")
def _(c: Ctx):
    return _superpixels(c, "--methods", "nope", "--csv", c.out("sp.csv")), ["nope"]


# --------------------------------------------------------------------------- experiment


@case("experiment-sweep-unknown-key")
def _(c: Ctx):
    return ["experiment", c.sweep(top_extra={"runs": 3})], ["runs"]


@case("experiment-sweep-unknown-setting")
def _(c: Ctx):
    return ["experiment", c.sweep(base_extra={"max_epoch": 2})], ["max_epoch"]


@case("experiment-sweep-not-yaml")
def _(c: Ctx):
    p = c.tmp / "sweep.yaml"
    p.write_text("base: [unclosed\n  - {\n")
    return ["experiment", str(p), "--out", c.out("sweep")]


@case("experiment-sweep-is-a-folder")
def _(c: Ctx):
    return ["experiment", c.existing_dir("sweep.yaml"), "--out", c.out("sweep")]


@case("experiment-set-unknown-setting")
def _(c: Ctx):
    return ["experiment", c.sweep(), "--set", "max_epoch=2"], ["max_epoch"]


@case("experiment-out-is-a-file")
def _(c: Ctx):
    return ["experiment", c.sweep(), "--out", c.a_file()]


@case("experiment-out-read-only")
def _(c: Ctx):
    return ["experiment", c.sweep(), "--out", c.ro]


# ---------------------------------------------------------------- synthetic, demo, prepare


@case("synthetic-out-is-a-file")
def _(c: Ctx):
    return ["synthetic", c.a_file(), "--n-images", "2", "--size", "48"]


@case("synthetic-out-read-only")
def _(c: Ctx):
    return ["synthetic", c.ro, "--n-images", "2", "--size", "48"]


@case("synthetic-size-too-small")
def _(c: Ctx):
    return ["synthetic", c.out("syn"), "--n-images", "2", "--size", "8"]


@case("synthetic-n-images-zero")
def _(c: Ctx):
    return ["synthetic", c.out("syn"), "--n-images", "0", "--size", "48"]


_DEMO_TINY = ["--n-images", "12", "--size", "48", "--max-epochs", "1", "--base-channels", "4"]
_DEMO_TINY += ["--n-segments", "30", "--accelerator", "cpu"]


@case("demo-out-is-a-file")
def _(c: Ctx):
    return ["demo", "--out", c.a_file(), *_DEMO_TINY]


@case("demo-out-read-only")
def _(c: Ctx):
    return ["demo", "--out", c.ro, *_DEMO_TINY]


@case("demo-data-missing")
def _(c: Ctx):
    return ["demo", "--out", c.out("demo"), "--data", str(c.tmp / "nowhere"), *_DEMO_TINY]


@case("demo-model-unknown")
def _(c: Ctx):
    return ["demo", "--out", c.out("demo"), "--model", "nope", *_DEMO_TINY], ["nope"]


@case("prepare-archive-garbage")
def _(c: Ctx):
    archive = _garbage(c.tmp / "landcover.ai.v1.zip")
    return ["prepare", "landcoverai", c.out("lc"), "--archive", str(archive), "--no-verify"]


@case("prepare-root-is-a-file")
def _(c: Ctx):
    archive = _garbage(c.tmp / "landcover.ai.v1.zip")
    return ["prepare", "landcoverai", c.a_file(), "--archive", str(archive), "--no-verify"]


@case("list-unknown-topic")
def _(c: Ctx):
    return ["list", "nope"]


# -------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_cleanly(name, env, tmp_path, request, capsys, helpers):
    built = CASES[name](Ctx(env=env, tmp=tmp_path, request=request))
    argv, contains = built if isinstance(built, tuple) else (built, [])
    before = helpers.visible_files(tmp_path, env.root)
    rc, out, err = helpers.run_main(["-q", *argv], capsys)
    helpers.assert_one_line_failure(rc, out, err, argv=["pointseg", "-q", *argv], contains=contains)
    after = helpers.visible_files(tmp_path, env.root)
    new = sorted(set(after) - set(before))
    changed = sorted(p for p in before if p in after and after[p] != before[p])
    assert not new and not changed, (
        f"a failed `{' '.join(argv)}` wrote {len(new)} file(s) {new[:4]} and changed "
        f"{len(changed)} {changed[:4]}"
    )


SUBPROCESS_CASES = [
    "train-model-options-typo",
    "train-points-empty-csv",
    "predict-model-random-bytes",
    "evaluate-out-existing-folder",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_real_entry_point_prints_one_line(name, env, tmp_path, request, helpers):
    built = CASES[name](Ctx(env=env, tmp=tmp_path, request=request))
    argv, contains = built if isinstance(built, tuple) else (built, [])
    before = helpers.visible_files(tmp_path, env.root)
    proc = helpers.run_cli(["-q", *argv], cwd=tmp_path)
    helpers.assert_one_line_failure(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        argv=["python -m pointseg -q", *argv],
        contains=contains,
    )
    after = helpers.visible_files(tmp_path, env.root)
    assert after == before, f"`{' '.join(argv)}` wrote {sorted(set(after) - set(before))}"
