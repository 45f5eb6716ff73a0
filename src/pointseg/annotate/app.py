"""The web app of ``pointseg annotate`` (FastAPI).

FastAPI (on Starlette, served by uvicorn) because its typed request bodies give every endpoint
input validation with 4xx answers that say what is wrong, with no code of our own, and its test
client runs the app in-process; the page itself is plain HTML and JavaScript served by the app.

Image ids come from the session's own listing (``"0"``, ``"1"``, ...), so no path sent by a
client ever reaches the filesystem.
"""

from __future__ import annotations

import hmac
import logging
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pointseg.annotate.model import PageModel, TrainingConflict
from pointseg.annotate.preview import TILE, PreviewEngine, levels_for
from pointseg.annotate.raster_preview import RasterPreviewEngine
from pointseg.annotate.session import AnnotationSession, StaleVersion

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_STATIC = resources.files("pointseg.annotate") / "static"
_STATIC_FILES = {"index.html", "app.js", "app.css"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewPoint(_Strict):
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    class_: int = Field(alias="class", ge=0)
    version: int = Field(ge=0)


class VersionBody(_Strict):
    version: int = Field(ge=0)


class EmptyBody(_Strict):
    pass


class SkipBody(_Strict):
    image: str
    x: int = Field(ge=0)
    y: int = Field(ge=0)


def _hex(color: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color[:3])


def create_app(
    session: AnnotationSession,
    preview: PreviewEngine | RasterPreviewEngine,
    *,
    token: str | None = None,
    settings: dict[str, Any] | None = None,
    model: PageModel | None = None,
) -> FastAPI:
    """The FastAPI app over an annotation session.

    ``GET /api/state``, ``GET /api/images/{id}`` (size, pyramid levels, points, version),
    ``GET /api/images/{id}/tiles/{level}/{x}/{y}.png``, the preview as ``overlay.png`` and
    ``boundaries.png`` (images on their training grid) or as ``overlay/`` and
    ``boundaries/{level}/{x}/{y}.png`` tiles (large rasters; ``?v=VERSION`` only defeats
    caches), ``POST /api/images/{id}/points`` ``{"x", "y", "class", "version"}``,
    ``DELETE /api/images/{id}/points/{point}?version=``, ``POST /api/undo`` and ``/api/redo``
    ``{"version"}``. A stale version gets 409, bad input 404/422 with a ``detail`` message.

    The model in the loop (:class:`PageModel`): ``GET /api/model`` (training state and
    progress, ``model_version``), ``POST /api/model/train`` and ``/api/model/stop`` ``{}``,
    the prediction as ``prediction.png`` (images on their training grid) or
    ``prediction/{level}/{x}/{y}.png`` tiles (large rasters; ``?m=MODEL_VERSION`` only defeats
    caches), ``GET /api/proposals?k=K`` (large rasters add ``image`` and the view ``x0, y0, x1,
    y1``) and ``POST /api/proposals/skip`` ``{"image", "x", "y"}``. Without a model the
    prediction and proposals answer 409 (404 when the app has no model part at all).

    Parameters
    ----------
    session : AnnotationSession
    preview : PreviewEngine
        Tiles, previews and boundaries.
    token : str, optional
        When set, every ``/api`` request needs it (header ``X-Token`` or query ``token``).
    settings : dict, optional
        The training settings shown by the page.
    model : PageModel, optional
        Training from the page, the prediction overlay and click proposals.
    """
    app = FastAPI(title="pointseg annotate", docs_url=None, redoc_url=None, openapi_url=None)

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("x-token") or request.query_params.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong access token (X-Token header)")

    def entry(image_id: str):
        try:
            return session.entry(image_id)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    def stale(exc: Exception) -> HTTPException:
        return HTTPException(409, str(exc))

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(str(_STATIC / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC_FILES:  # a fixed list: no client path reaches the filesystem
            raise HTTPException(404, f"no static file {name!r}")
        media = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
        return FileResponse(str(_STATIC / name), media_type=media[name.rsplit(".", 1)[1]])

    api = [Depends(check_token)]

    @app.get("/api/state", dependencies=api)
    def state() -> dict[str, Any]:
        return {
            "version": session.version,
            "classes": [
                {"index": i, "name": n, "color": _hex(c)}
                for i, (n, c) in enumerate(
                    zip(session.class_names, session.class_colors, strict=True)
                )
            ],
            "images": [
                {
                    "id": e.id,
                    "name": e.name,
                    "width": e.width,
                    "height": e.height,
                    "n_points": sum(counts := session.counts(e.name)),
                    "counts": counts,
                }
                for e in session.images
            ],
            "points_file": str(session.points_file),
            "tile_size": TILE,
            "settings": settings or {},
            "model": model.status() if model is not None else None,
            "proposal_strategy": model.strategy if model is not None else None,
            "proposals_k": model.k if model is not None else 0,
        }

    @app.get("/api/images/{image_id}", dependencies=api)
    def image(image_id: str) -> dict[str, Any]:
        e = entry(image_id)
        version, _ = session.snapshot(e.name)
        return {
            "id": e.id,
            "name": e.name,
            "width": e.width,
            "height": e.height,
            "levels": levels_for(e.width, e.height),
            "tile_size": TILE,
            "overlay": preview.mode,
            "points": [
                {**pt, "held_out": (pt["x"], pt["y"]) in held}
                for held in [preview.held_out(e.name)]
                for pt in session.point_list(e.name)
            ],
            "version": version,
        }

    def png(data: bytes) -> Response:
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/images/{image_id}/tiles/{level}/{tx}/{ty}.png", dependencies=api)
    def tile(image_id: str, level: int, tx: int, ty: int) -> Response:
        e = entry(image_id)
        try:
            data = preview.tile(e.name, level, tx, ty)
        except IndexError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    def single(image_id: str, what: str) -> Response:
        e = entry(image_id)
        if preview.mode != "single":
            raise HTTPException(404, f"image {e.id} is a large raster: use {what}/LEVEL/X/Y.png")
        fn = preview.overlay_png if what == "overlay" else preview.boundaries_png
        return png(fn(e.name))

    def tiled(image_id: str, what: str, level: int, tx: int, ty: int) -> Response:
        e = entry(image_id)
        if preview.mode != "tiled":
            raise HTTPException(404, f"image {e.id} has one {what}.png, not tiles")
        fn = preview.overlay_tile if what == "overlay" else preview.boundaries_tile
        try:
            return png(fn(e.name, level, tx, ty))
        except IndexError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/images/{image_id}/overlay.png", dependencies=api)
    def overlay(image_id: str, v: int | None = Query(default=None)) -> Response:
        return single(image_id, "overlay")

    @app.get("/api/images/{image_id}/boundaries.png", dependencies=api)
    def boundaries(image_id: str) -> Response:
        return single(image_id, "boundaries")

    @app.get("/api/images/{image_id}/overlay/{level}/{tx}/{ty}.png", dependencies=api)
    def overlay_tile(
        image_id: str, level: int, tx: int, ty: int, v: int | None = Query(default=None)
    ) -> Response:
        return tiled(image_id, "overlay", level, tx, ty)

    @app.get("/api/images/{image_id}/boundaries/{level}/{tx}/{ty}.png", dependencies=api)
    def boundaries_tile(
        image_id: str, level: int, tx: int, ty: int, v: int | None = Query(default=None)
    ) -> Response:
        return tiled(image_id, "boundaries", level, tx, ty)

    @app.post("/api/images/{image_id}/points", dependencies=api)
    def add_point(image_id: str, body: NewPoint) -> dict[str, Any]:
        e = entry(image_id)
        try:
            point = session.add_point(e.id, body.x, body.y, body.class_, version=body.version)
        except StaleVersion as exc:
            raise stale(exc) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        held = (point["x"], point["y"]) in preview.held_out(e.name)
        return {"version": session.version, "point": {**point, "held_out": held}}

    @app.delete("/api/images/{image_id}/points/{point_id}", dependencies=api)
    def delete_point(image_id: str, point_id: str, version: int = Query(ge=0)) -> dict[str, Any]:
        e = entry(image_id)
        try:
            session.remove_point(e.id, point_id, version=version)
        except StaleVersion as exc:
            raise stale(exc) from None
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        return {"version": session.version}

    def history(fn: Any, body: VersionBody) -> dict[str, Any]:
        try:
            image_id = fn(version=body.version)
        except StaleVersion as exc:
            raise stale(exc) from None
        except LookupError as exc:
            raise HTTPException(409, str(exc.args[0])) from None
        return {"version": session.version, "image_id": image_id}

    @app.post("/api/undo", dependencies=api)
    def undo(body: VersionBody) -> dict[str, Any]:
        return history(session.undo, body)

    @app.post("/api/redo", dependencies=api)
    def redo(body: VersionBody) -> dict[str, Any]:
        return history(session.redo, body)

    # ------------------------------------------------------------------- model in the loop

    def page_model() -> PageModel:
        if model is None:
            raise HTTPException(404, "this app has no model part")
        return model

    def needs_model(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IndexError as exc:  # a tile outside the pyramid
            raise HTTPException(404, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(409, str(exc.args[0])) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/api/model", dependencies=api)
    def model_status() -> dict[str, Any]:
        return page_model().status()

    @app.post("/api/model/train", dependencies=api, status_code=202)
    def model_train(body: EmptyBody) -> dict[str, Any]:
        m = page_model()
        try:
            return m.start()
        except TrainingConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/api/model/stop", dependencies=api)
    def model_stop(body: EmptyBody) -> dict[str, Any]:
        try:
            return page_model().stop()
        except TrainingConflict as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/api/images/{image_id}/prediction.png", dependencies=api)
    def prediction(image_id: str, m: int | None = Query(default=None)) -> Response:
        e = entry(image_id)
        if preview.mode != "single":
            raise HTTPException(404, f"image {e.id} is a large raster: use prediction/L/X/Y.png")
        return png(needs_model(page_model().prediction_png, e.name))

    @app.get("/api/images/{image_id}/prediction/{level}/{tx}/{ty}.png", dependencies=api)
    def prediction_tile(
        image_id: str, level: int, tx: int, ty: int, m: int | None = Query(default=None)
    ) -> Response:
        e = entry(image_id)
        if preview.mode != "tiled":
            raise HTTPException(404, f"image {e.id} has one prediction.png, not tiles")
        data, note = needs_model(page_model().prediction_tile, e.name, level, tx, ty)
        headers = {"Cache-Control": "no-store"}
        if note:
            headers["X-Pointseg-Note"] = note
        return Response(data, media_type="image/png", headers=headers)

    @app.get("/api/proposals", dependencies=api)
    def proposals(
        k: int | None = Query(default=None, ge=1, le=1000),
        image: str | None = None,
        x0: float | None = None,
        y0: float | None = None,
        x1: float | None = None,
        y1: float | None = None,
    ) -> dict[str, Any]:
        m = page_model()
        name = entry(image).name if image is not None else None
        view = (x0, y0, x1, y1)
        rect = view if all(v is not None for v in view) else None
        return needs_model(m.proposals, k=k, name=name, rect=rect)

    @app.post("/api/proposals/skip", dependencies=api)
    def skip(body: SkipBody) -> dict[str, Any]:
        e = entry(body.image)
        try:
            return {"skipped": page_model().skip(e.name, body.x, body.y)}
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.exception_handler(OSError)
    def disk_error(request: Request, exc: OSError) -> JSONResponse:
        logger.error("writing the points failed: %s", exc)
        return JSONResponse({"detail": f"the points file could not be written: {exc}"}, 507)

    return app
