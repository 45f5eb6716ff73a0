"""``pointseg annotate``: a local web app to click query points and see the pseudo-labels."""

from __future__ import annotations

import argparse
import secrets
import sys
import threading

from pointseg.cli._common import DATA_SETTINGS, add_setting_flags, config_from_args

__all__ = ["add_parser", "run"]

#: The proposal strategy the page uses unless told otherwise (the best of the loop studies).
DEFAULT_STRATEGY = "entropy"

#: The settings of `pointseg train` that decide what the preview shows.
_PREVIEW_SETTINGS = (
    "image_size",
    "resize",
    "window",
    "scale",
    "superpixel_area",
    "superpixels",
    "n_segments",
    "fill_counts",
    "propagation",
    "max_region_area",
    "superpixel_options",
    "seed",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="click query points in the browser and see the pseudo-labels they give",
        description="Starts a local web app on DATA (any dataset pointseg reads) and prints its "
        "URL. Every click is written at once to --points (default DATA/points.gpkg for "
        "georeferenced images, else DATA/points.csv), in the format 'pointseg train --points' "
        "reads; the preview is the pseudo-label training builds with the same settings.",
    )
    p.add_argument("data", help="dataset root (a folder of images; masks optional)")
    p.add_argument(
        "--points", dest="points_out", help="points file read at start, written on every change"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="needed to bind an address other than localhost; an access token is then required",
    )
    p.add_argument("--token", help="access token (default: a random one when not on localhost)")
    m = p.add_argument_group("model in the loop (Train button, prediction overlay, proposals)")
    m.add_argument("--model", help="a model.pt to start with (its prediction and proposals)")
    m.add_argument(
        "--proposal-strategy",
        default=DEFAULT_STRATEGY,
        help=f"how the next clicks are chosen (default {DEFAULT_STRATEGY}; see "
        "'pointseg list proposals')",
    )
    m.add_argument(
        "--proposals", type=int, default=10, help="clicks proposed at a time (default 10)"
    )
    m.add_argument(
        "--runs",
        help="folder of the trainings started from the page (default: beside the points file, "
        "POINTS-runs/)",
    )
    m.add_argument(
        "--train-epochs",
        type=int,
        help="epochs of a page training (default: 40 on a CPU, 80 with CUDA)",
    )
    m.add_argument(
        "--train-seconds",
        type=float,
        help="stop a page training after this many seconds of training (the best model so far "
        "is kept; default 120 on a CPU, no limit with CUDA)",
    )
    add_setting_flags(m, ("accelerator",))
    add_setting_flags(p, _PREVIEW_SETTINGS)
    add_setting_flags(p, DATA_SETTINGS)


def _local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from pointseg.annotate import create_app, open_session
    from pointseg.annotate.model import PageModel

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    token = args.token
    if not _local(args.host):
        if not args.allow_remote:
            raise ValueError(
                f"--host {args.host} exposes the app beyond this machine: add --allow-remote "
                "(an access token is then required)"
            )
        token = token or secrets.token_urlsafe(16)
    cfg = config_from_args(args)
    cfg.data = args.data
    cfg.validate()
    if args.train_seconds is not None and not args.train_seconds > 0:
        raise ValueError(f"--train-seconds must be positive, got {args.train_seconds}")
    session, preview = open_session(cfg, points_file=args.points_out)
    settings = {k: getattr(cfg, k) for k in _PREVIEW_SETTINGS}
    points = session.points_file
    model = PageModel(
        session,
        preview,
        cfg,
        runs_dir=args.runs or points.with_name(f"{points.stem}-runs"),
        model_path=args.model,
        strategy=args.proposal_strategy,
        k=args.proposals,
        epochs=args.train_epochs,
        max_seconds=args.train_seconds,
        accelerator=cfg.accelerator,
    )
    app = create_app(session, preview, token=token, settings=settings, model=model)
    # the first image's superpixels are ready before the page asks for them
    threading.Thread(target=preview.warm, args=(session.images[0].name,), daemon=True).start()
    sock = _bind(args.host, args.port)  # a taken port is a clear error before any serving
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        import time

        while not server.started:
            time.sleep(0.05)
        port = sock.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
        if not _local(args.host):
            print(
                f"WARNING: serving on {args.host}: anyone who can reach this machine and has "
                "the token can edit the points",
                file=sys.stderr,
            )
        print(
            f"pointseg annotate: {len(session.images)} image(s), points in "
            f"{session.points_file}\nopen {url}",
            flush=True,
        )

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        model.close()  # a training still running stops with the server
    return 0


def _bind(host: str, port: int):
    """A listening socket on ``host:port``, or a one-line error naming the fix."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host!r} is not an address of this machine ({exc})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ValueError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "(0 picks a free one)"
        ) from None
    sock.listen(128)
    return sock
