"""Export trained pointseg models to ONNX, and run exported models with ONNX Runtime.

The ONNX file is self-contained: besides the network it stores the :class:`ModelSpec` as JSON
in the model's ``metadata_props`` (key ``pointseg.spec``), so normalisation, bands, class names
and colours travel with it.

Graph contract
--------------
input ``image``
    float32, shape (batch, in_channels, height, width), **already normalised** with
    ``(x - spec.mean) / spec.std`` (and resized to ``spec.image_size`` when that is set), exactly
    what the PyTorch model receives in :func:`pointseg.predict.predict_logits`.
output ``logits``
    float32, shape (batch, num_classes, height, width).

Batch is always dynamic; height and width are dynamic unless ``dynamic_size=False``.

Exporter
--------
The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used. With torch
2.14 it exports every registry model in about a second, needs no package beyond ``onnx``, and
supports opsets 9-20 (it is deprecated upstream but still shipped). The ``torch.export``-based
(dynamo) exporter was tried and rejected: it also needs ``onnxscript``, takes ~10 s instead of
~0.5 s on a tiny UNet, silently specialised the UNet's data-dependent skip padding to the example
size (wrong results at other sizes), and fails on the shape-generic pad below ("Could not infer
dtype of SymBool").

Both exporters freeze Python ``if`` statements on tensor sizes, so two registry modules are exported
through shape-generic twins that share their parameters and compute the same values without
branches: :class:`~pointseg.models.UNet` (skip padding always applied; a zero pad is a no-op)
and the smp pad-to-32 wrapper (reflect/replicate padding as index gathers). ``verify`` runs the
exported graph at 64x64 and 75x53 (not multiples of 2, 4, ..., 32) to catch any specialisation
left in other models.

onnx and onnxruntime are optional (``pip install onnx onnxruntime``) and imported lazily;
:class:`OnnxModel` needs only onnxruntime.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointseg.io.atomic import atomic_write
from pointseg.models.registry import ModelSpec, _PadToMultiple, load_model
from pointseg.models.unet import UNet

__all__ = [
    "DEFAULT_OPSET",
    "FORMAT",
    "INPUT_NAME",
    "METADATA_FORMAT_KEY",
    "METADATA_KEY",
    "OUTPUT_NAME",
    "OnnxExportError",
    "OnnxModel",
    "export_onnx",
    "load_onnx",
    "read_onnx_spec",
]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
"""Default ONNX opset (the TorchScript exporter supports 9-20; ONNX Runtime >= 1.14 runs 18)."""
METADATA_KEY = "pointseg.spec"
"""``metadata_props`` key holding the :class:`ModelSpec` as JSON."""
METADATA_FORMAT_KEY = "pointseg.format"
"""``metadata_props`` key holding :data:`FORMAT`."""
FORMAT = "pointseg-onnx-1"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"

_INSTALL_HINT = "pip install onnx onnxruntime"
_VERIFY_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (75, 53))
_PROVIDER_ALIASES = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxExportError(RuntimeError):
    """The exported ONNX model does not reproduce the PyTorch model."""


# --------------------------------------------------------------------------------------------
# lazy imports


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the 'onnx' package: {_INSTALL_HINT}") from exc
    return onnx


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"running ONNX models needs the 'onnxruntime' package: {_INSTALL_HINT} "
            "(or onnxruntime-gpu for CUDA)"
        ) from exc
    return onnxruntime


# --------------------------------------------------------------------------------------------
# shape-generic twins of modules with data-dependent branches


class _TraceableUNet(nn.Module):
    """:class:`UNet` with the skip padding always applied (a zero pad is a no-op).

    Shares the wrapped UNet's parameters; the forward is the same computation without the
    ``if dh or dw`` branch that tracing would freeze at the example size.
    """

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.unet
        skips = [u.inc(x)]
        for block in u.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, dec in zip(u.up, u.dec, strict=True):
            y = up(y)
            skip = skips.pop()
            dh = skip.shape[-2] - y.shape[-2]
            dw = skip.shape[-1] - y.shape[-1]
            y = F.pad(y, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            y = dec(torch.cat([skip, y], dim=1))
        return u.head(y)


def _pad_index(n: Any, pad: Any, reflect: torch.Tensor) -> torch.Tensor:
    """Source indices (n + pad,) of a reflect (or replicate) pad at the end of an axis."""
    i = torch.arange(n + pad, dtype=torch.int64)
    last = n - 1
    reflected = torch.where(i < n, i, 2 * last - i).clamp(min=0)
    replicated = i.clamp(max=last)
    return torch.where(reflect, reflected, replicated)


class _TraceablePadToMultiple(nn.Module):
    """:class:`_PadToMultiple` as gathers, so that pad sizes and the mode stay dynamic.

    Pads by indexing: reflection when both pads are smaller than the image, else replication,
    exactly like the eager module, then crops the logits back.
    """

    def __init__(self, module: _PadToMultiple) -> None:
        super().__init__()
        self.net = module.net
        self.multiple = module.multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = -h % self.multiple, -w % self.multiple
        reflect = torch.as_tensor((ph < h) & (pw < w))
        x = x.index_select(2, _pad_index(h, ph, reflect))
        x = x.index_select(3, _pad_index(w, pw, reflect))
        return self.net(x)[..., :h, :w]


def _export_ready(model: nn.Module) -> nn.Module:
    """``model`` itself, or a shape-generic twin sharing its parameters."""
    if isinstance(model, UNet):
        return _TraceableUNet(model).eval()
    if isinstance(model, _PadToMultiple):
        return _TraceablePadToMultiple(model).eval()
    return model


# --------------------------------------------------------------------------------------------
# export


def _resolve_model_file(model_path: str | Path) -> Path:
    path = Path(model_path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} does not exist; pass the model.pt written by 'pointseg train' "
            "(or its run folder)"
        )
    return path


def _spec_to_json(spec: ModelSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def _spec_from_json(text: str, *, source: Path) -> ModelSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{source}: metadata {METADATA_KEY!r} is not valid JSON ({exc}); re-export the "
            "model with pointseg.export.export_onnx"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"{source}: metadata {METADATA_KEY!r} is not a JSON object")
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        logger.warning("%s: ignoring unknown model spec fields %s", source, unknown)
    try:
        return ModelSpec(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ValueError(
            f"{source}: metadata {METADATA_KEY!r} is not a complete pointseg model spec ({exc}); "
            "re-export the model with pointseg.export.export_onnx"
        ) from exc


def _check_opset(opset: int) -> None:
    """Refuse an opset outside the TorchScript exporter's range."""
    constants = getattr(torch.onnx, "_constants", None)
    max_opset = int(getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    if not 9 <= opset <= max_opset:
        raise ValueError(f"opset must be between 9 and {max_opset} for this exporter, got {opset}")


def _set_metadata(proto: Any, meta: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ONNX ``ModelProto`` with ``meta`` (key → string)."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _torch_export(
    model: nn.Module,
    example: torch.Tensor,
    *,
    opset: int,
    dynamic_size: bool,
    input_name: str = INPUT_NAME,
    output_name: str = OUTPUT_NAME,
) -> bytes:
    """Serialised ONNX graph of ``model`` from the TorchScript-based exporter."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            model,
            (example,),
            buf,
            input_names=[input_name],
            output_names=[output_name],
            opset_version=opset,
            dynamic_axes={input_name: axes, output_name: axes},
            do_constant_folding=True,
            dynamo=False,
        )
    for w in caught:  # tracer notes and the exporter's deprecation notice; verify is the check
        logger.debug("torch.onnx.export: %s: %s", w.category.__name__, w.message)
    return buf.getvalue()


def _compare(
    model: nn.Module,
    session: Any,
    shapes: Sequence[tuple[int, int, int, int]],
    *,
    atol: float,
    rtol: float,
    out: Path,
) -> float:
    """Largest |onnx - torch| over random inputs of ``shapes``; raise beyond tolerance."""
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        try:
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        except Exception as exc:
            raise OnnxExportError(
                f"the exported model {out} fails in onnxruntime on an input of shape "
                f"{tuple(shape)}: {exc}"
            ) from exc
        if got.shape != ref.shape:
            raise OnnxExportError(
                f"the exported model {out} gives logits of shape {got.shape} for an input of "
                f"shape {tuple(shape)}, PyTorch gives {ref.shape}"
            )
        diff = np.abs(got - ref)
        max_diff = float(diff.max()) if diff.size else 0.0
        worst = max(worst, max_diff)
        if not np.all(diff <= atol + rtol * np.abs(ref)):
            raise OnnxExportError(
                f"the exported model {out} differs from PyTorch on an input of shape "
                f"{tuple(shape)}: max |difference| {max_diff:.3g} > atol {atol:g} + rtol {rtol:g}"
                f" * |logits| (logits up to {float(np.abs(ref).max()):.3g}); raise atol/rtol if "
                "this is float rounding, or export with verify=False to keep the file anyway"
            )
    return worst


def export_onnx(
    model_path: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool = True,
    input_size: tuple[int, int] | None = None,
    verify: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> Path:
    """Export a saved pointseg model to a self-contained ONNX file.

    Parameters
    ----------
    model_path : str or Path
        The ``model.pt`` written by :func:`pointseg.models.save_model` (or its folder).
    out : str or Path
        The ``.onnx`` file to write (atomically: a temporary file renamed on success).
    opset : int
        ONNX opset, 9-20 (the TorchScript exporter's range); 18 by default.
    dynamic_size : bool
        True (default): height and width are dynamic. False: fixed to ``input_size``, or to
        ``spec.image_size`` when ``input_size`` is None. Batch is always dynamic.
    input_size : (int, int), optional
        (height, width) for a fixed-size export; ignored when ``dynamic_size``.
    verify : bool
        Run the exported graph with onnxruntime (CPU) on random inputs and compare with PyTorch:
        shapes (1, C, 64, 64) and (2, C, 75, 53) when dynamic, (1 and 2, C, H, W) when fixed.
    atol, rtol : float
        Tolerance of the check: ``|onnx - torch| <= atol + rtol * |torch|`` element-wise.

    Returns
    -------
    Path
        ``out``. Input ``image`` float32 (batch, in_channels, height, width), already normalised;
        output ``logits`` float32 (batch, num_classes, height, width); the spec is in
        ``metadata_props[METADATA_KEY]`` as JSON.

    Raises
    ------
    FileNotFoundError
        ``model_path`` does not exist.
    ImportError
        onnx (or, with ``verify``, onnxruntime) is not installed.
    ValueError
        Bad ``opset`` or sizes.
    OnnxExportError
        With ``verify``: the ONNX outputs differ from PyTorch beyond tolerance (``out`` is not
        written).
    """
    onnx = _import_onnx()
    ort = _import_ort() if verify else None
    src = _resolve_model_file(model_path)
    out = Path(out)
    _check_opset(opset)

    model, spec = load_model(src, map_location="cpu")
    model.eval()
    c = spec.in_channels
    if dynamic_size:
        size = _VERIFY_SIZES[0]
        shapes = [(1, c, *_VERIFY_SIZES[0]), (2, c, *_VERIFY_SIZES[1])]
    else:
        if input_size is None:
            side = spec.image_size or spec.window  # the resize square, or the training window
            if not side:
                raise ValueError(
                    f"{src} has no spec.image_size: pass input_size=(H, W) for a fixed-size "
                    "export, or use dynamic_size=True"
                )
            input_size = (side, side)
        size = (int(input_size[0]), int(input_size[1]))
        if min(size) < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        shapes = [(1, c, *size), (2, c, *size)]

    net = _export_ready(model)
    example = torch.zeros(2, c, *size)
    proto = onnx.load_from_string(
        _torch_export(net, example, opset=opset, dynamic_size=dynamic_size)
    )
    _set_metadata(proto, {METADATA_FORMAT_KEY: FORMAT, METADATA_KEY: _spec_to_json(spec)})
    proto.doc_string = (
        f"pointseg {spec.name}: {INPUT_NAME} float32 (batch, {c}, height, width) normalised "
        f"with spec mean/std -> {OUTPUT_NAME} (batch, {spec.num_classes}, height, width)"
    )
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    if verify:
        model.eval()  # the exporter restores each module's mode; the reference runs in eval
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        worst = _compare(model, session, shapes, atol=atol, rtol=rtol, out=out)
        logger.info("verified %s against PyTorch: max |difference| %.3g", out, worst)

    with atomic_write(out) as tmp:
        tmp.write_bytes(data)
    logger.info(
        "exported %s (%s, opset %d, %s) to %s (%.1f MB)",
        src,
        spec.name,
        opset,
        "dynamic size" if dynamic_size else f"size {size[0]}x{size[1]}",
        out,
        len(data) / 1e6,
    )
    return out


# --------------------------------------------------------------------------------------------
# inference


def _resolve_providers(providers: str | Sequence[str] | None, available: list[str]) -> list[str]:
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        key = providers.lower()
        if key == "auto":
            return _PROVIDER_ALIASES["cuda" if "CUDAExecutionProvider" in available else "cpu"]
        if key in _PROVIDER_ALIASES:
            providers = _PROVIDER_ALIASES[key]
        else:
            providers = [providers]
    providers = list(providers)
    missing = [p for p in providers if p not in available]
    if missing:
        hint = " (install onnxruntime-gpu for CUDA)" if "CUDAExecutionProvider" in missing else ""
        raise RuntimeError(
            f"ONNX Runtime provider(s) {missing} are not available here{hint}; available: "
            f"{available}. Use providers='cpu'"
        )
    return providers


class OnnxModel:
    """An exported pointseg model run by ONNX Runtime, usable where the torch model is.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file written by :func:`export_onnx`.
    providers : str or sequence of str, optional
        ONNX Runtime execution providers. None or ``"cpu"``: CPU. ``"cuda"``: CUDA then CPU
        (needs onnxruntime-gpu). ``"auto"``: CUDA when available, else CPU. Or a list of
        provider names.

    Attributes
    ----------
    spec : ModelSpec
        Read back from the file's metadata.
    device : torch.device
        Always CPU: inputs are handed to ONNX Runtime from host memory (it copies them to the
        GPU itself with the CUDA provider). Outputs come back on the input's device.
    input_size : (int, int) or None
        (height, width) the graph is fixed to, None when dynamic.
    providers : list of str
        The providers the session uses.
    path : Path
    """

    def __init__(self, path: str | Path, *, providers: str | Sequence[str] | None = None) -> None:
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model file {self.path} does not exist")
        chosen = _resolve_providers(providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(self.path), providers=chosen)
        except Exception as exc:
            raise ValueError(
                f"{self.path} is not a readable ONNX model ({exc}); export one with "
                "pointseg.export.export_onnx"
            ) from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ValueError(
                f"{self.path} is an ONNX model without pointseg metadata ({METADATA_KEY!r}); "
                "export it with pointseg.export.export_onnx so that normalisation, bands and "
                "classes travel with it"
            )
        self.spec = _spec_from_json(meta[METADATA_KEY], source=self.path)
        inputs = {i.name: i for i in self._session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise ValueError(
                f"{self.path} has no input named {INPUT_NAME!r} (inputs: {sorted(inputs)}); "
                "export it with pointseg.export.export_onnx"
            )
        shape = inputs[INPUT_NAME].shape
        h, w = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
        self.input_size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.providers: list[str] = list(self._session.get_providers())
        self.device = torch.device("cpu")
        logger.info("loaded ONNX model %s (%s) with %s", self.path, self.spec.name, self.providers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a normalised batch.

        Parameters
        ----------
        x : Tensor, shape (B, in_channels, H, W)
            Normalised like the torch model's input; any device, converted to float32.

        Returns
        -------
        Tensor, shape (B, num_classes, H, W)
            float32, on ``x``'s device.
        """
        if x.ndim != 4 or x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"{self.path} expects a (batch, {self.spec.in_channels}, height, width) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"{self.path} was exported for {self.input_size[0]}x{self.input_size[1]} "
                f"inputs, got {x.shape[-2]}x{x.shape[-1]}; resize the input or re-export with "
                "dynamic_size=True"
            )
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: arr})
        return torch.from_numpy(logits).to(x.device)

    forward = __call__

    def eval(self) -> OnnxModel:
        """No-op (an ONNX graph is always in inference mode); returns self."""
        return self

    def to(self, device: str | torch.device) -> OnnxModel:
        """No-op returning self: the execution device is chosen by ``providers``."""
        return self

    def __repr__(self) -> str:
        path, name = str(self.path), self.spec.name
        return f"OnnxModel({path!r}, model={name!r}, providers={self.providers})"


def load_onnx(
    path: str | Path, *, providers: str | Sequence[str] | None = None
) -> tuple[OnnxModel, ModelSpec]:
    """Load an exported model; the counterpart of :func:`pointseg.models.load_model`.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file written by :func:`export_onnx`.
    providers : str or sequence of str, optional
        See :class:`OnnxModel`; CPU by default.

    Returns
    -------
    model : OnnxModel
        Callable on (B, in_channels, H, W) float32 tensors, returning (B, num_classes, H, W).
    spec : ModelSpec
        From the file's metadata.
    """
    model = OnnxModel(path, providers=providers)
    return model, model.spec


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata properties of an ONNX file as raw strings (needs ``onnx``).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a readable ONNX model.
    """
    onnx = _import_onnx()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable ONNX model ({exc})") from exc
    return {p.key: p.value for p in proto.metadata_props}


def read_onnx_spec(path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` stored in an exported file (needs ``onnx``, not onnxruntime).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, not an ONNX model, or no pointseg metadata.
    """
    path = Path(path)
    meta = onnx_metadata(path)
    if METADATA_KEY not in meta:
        raise ValueError(
            f"{path} is an ONNX model without pointseg metadata ({METADATA_KEY!r}); export it "
            "with pointseg.export.export_onnx"
        )
    return _spec_from_json(meta[METADATA_KEY], source=path)
