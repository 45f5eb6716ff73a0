"""``pointseg annotate``: click query points in the browser and see what each click buys.

:class:`AnnotationSession` holds the images, points, versions and the points file;
:class:`PreviewEngine` draws tiles and the live pseudo-label preview with the code training
uses; :func:`create_app` is the FastAPI app over both.
"""

from pointseg.annotate.app import create_app
from pointseg.annotate.preview import PreviewEngine
from pointseg.annotate.raster_preview import RasterPreviewEngine
from pointseg.annotate.session import AnnotationSession, StaleVersion, default_points_file

__all__ = [
    "AnnotationSession",
    "PreviewEngine",
    "RasterPreviewEngine",
    "StaleVersion",
    "create_app",
    "default_points_file",
    "open_session",
]


def open_session(cfg, *, points_file=None):
    """A session and its preview engine for a training configuration ``cfg``.

    Large rasters (``dataset="rasters"``) are read in windows and previewed block by block
    (:class:`RasterPreviewEngine`); other datasets are previewed on their training grid
    (:class:`PreviewEngine`).
    """
    dataset = cfg.open_dataset(None, require_masks=False)
    session = AnnotationSession(dataset, data=cfg.data, points_file=points_file)
    settings = cfg.pseudo_label_settings()
    if cfg.dataset == "rasters":
        engine = RasterPreviewEngine(
            session, dataset, settings, window=cfg.window_size or 256, split_seed=cfg.split_seed
        )
        return session, engine
    area = cfg.pixels_per_segment()  # training's superpixel area (None: a count per image)
    return session, PreviewEngine(session, settings, cfg.resize_size, superpixel_area=area)
