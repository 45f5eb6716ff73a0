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
        if not cfg.image_size:
            raise ValueError("the rasters dataset needs image_size: the training window side")
        engine = RasterPreviewEngine(
            session, dataset, settings, window=cfg.image_size, split_seed=cfg.split_seed
        )
        return session, engine
    return session, PreviewEngine(session, settings, cfg.image_size)
