"""``disyre_v2_predict --backend onnxruntime``: the trained networks run by onnxruntime on the CPU.

Each loaded network is exported to ONNX in memory (``disyre_v2.model_sharing.onnx_export``, the same
weights: EMA where kept) and put behind an ``(x, t) -> x0`` call, so the predictor's windows, levels,
blending and median filter are unchanged; only the forward pass runs elsewhere. Maps equal torch's to
1e-4 (tests/test_onnx_export.py). On a 2-core CPU it scored a 2d_small volume 2.0-2.8x faster than
torch's eager fp32 forward (benchmarks/onnx_speed.py; documentation/explanation/performance.md,
"ONNX"). fp32 and the CPU only; needs the optional extra ``pip install -e ".[onnx]"``.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import atomic_path
from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.training.network.unet import DisyreUNet

BACKENDS = ("torch", "onnxruntime")
OPSET = 17
INPUT_NAMES = ("x", "t")
OUTPUT_NAME = "x0"
ONNX_FIX = 'install the optional extra: pip install -e ".[onnx]" (or pip install onnx onnxruntime), or use --backend torch'


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes the file through it)
    except ImportError as error:
        raise UserError(f"ONNX export needs the onnx package ({error})",
                        fix='install the optional extra: pip install -e ".[onnx]" (or pip install onnx onnxruntime)') from None


def export_network(network: torch.nn.Module, conditional: bool, in_channels: int, patch_size: Sequence[int],
                   output: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write one network as ONNX (dynamic batch, height and width; ``t`` for conditional models)."""
    _require_onnx()
    import onnx

    network = network.float().eval().cpu()
    example_x = torch.zeros(2, in_channels, *[int(p) for p in patch_size])
    # The U-Net is fully convolutional; a network with a dense bottleneck (the VAE) keeps its patch size.
    spatial = {0: "batch", 2: "height", 3: "width"} if isinstance(network, DisyreUNet) else {0: "batch"}
    inputs: tuple = (example_x,)
    names = [INPUT_NAMES[0]]
    axes: dict[str, dict[int, str]] = {"x": spatial, OUTPUT_NAME: spatial}
    if conditional:
        inputs = (example_x, torch.zeros(2, dtype=torch.int64))
        names.append(INPUT_NAMES[1])
        axes["t"] = {0: "batch"}
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, ".onnx") as tmp, warnings.catch_warnings():
        # The TorchScript-based exporter (no onnxscript needed) warns that it is deprecated, and the
        # tracer that the input checks of forward() become constants: both are expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(network, inputs, str(tmp), dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return output


class OnnxRuntimeNetwork(torch.nn.Module):
    """An onnxruntime session behind the network's call ``(x, t) -> x0`` (CPU, float32)."""

    def __init__(self, model_bytes: bytes, conditional: bool, in_channels: int):
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        self.conditional = bool(conditional)
        self.in_channels = int(in_channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int | None = None) -> torch.Tensor:
        feeds = {"x": x.detach().to("cpu", torch.float32).contiguous().numpy()}
        if self.conditional:
            if t is None:
                raise ValueError("this network is conditional: it needs the levels t")
            levels = torch.as_tensor(t, dtype=torch.int64)
            feeds["t"] = (levels.expand(x.shape[0]) if levels.ndim == 0 else levels).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, feeds)[0])


def check_backend(backend: str, device: torch.device, precision: str, compile: bool) -> None:
    """One-line refusals of what onnxruntime cannot do here; a missing onnxruntime is named with the fix."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}", fix=f"choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return
    for wrong, flag, fix in ((device.type != "cpu", f"-device {device.type}", "use -device cpu"),
                             (precision != "fp32", f"--precision {precision}", "use --precision fp32 (the CPU default)"),
                             (compile, "--compile on", "leave --compile at auto or off")):
        if wrong:
            raise UserError(f"--backend onnxruntime runs fp32 on the CPU only, not with {flag}",
                            fix=f"{fix}, or use --backend torch")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise UserError(f"--backend onnxruntime needs onnx and onnxruntime ({error})", fix=ONNX_FIX) from None


def onnxruntime_models(models: Sequence[LoadedModel], patch_size: Sequence[int]) -> list[LoadedModel]:
    """The same models with each network exported to ONNX and run by an onnxruntime session."""
    converted = []
    with tempfile.TemporaryDirectory() as staging:
        for index, model in enumerate(models):
            in_channels = int(model.network.in_channels)
            path = export_network(model.network, model.conditional, in_channels, patch_size,
                                  Path(staging) / f"network_{index}.onnx")
            network = OnnxRuntimeNetwork(path.read_bytes(), model.conditional, in_channels)
            converted.append(replace(model, network=network))
    return converted
