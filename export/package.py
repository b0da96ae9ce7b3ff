"""Checkpoint → model package: ``model.onnx`` + ``config.json`` + ``README.md`` (the model card).

The ONNX graph takes exactly what the runtime's core path produces — the aligned face clip as uint8
``(N, T, S, S, 3)`` RGB at the face-crop size — and does inside the graph what training did after the
cache: resize to the network's input size (the same bilinear resize as training's evaluation),
normalise, build the Décalcomanie views, run the backbone and fuse:

- SBML packages take a second input ``views`` (int64 indices into O=0, L=1, R=2; any subset, any order)
  and output ``probs`` ``(N, K)`` — the softmax of the summed view logits — and ``view_logits`` ``(V, N, K)``;
- FSB packages classify their fixed training views' concatenated features: input ``clips`` only, output
  ``probs`` and ``logits``.

Right after writing, the package is reloaded in ONNX Runtime, ``onnx.checker`` runs a full check, and the
outputs are compared with PyTorch's on real preprocessed clips (logits within rtol 1e-3 / atol 1e-4 × the
largest |logit|, same argmax) — or export fails. fp16 (GPU) and int8 (CPU, static QDQ calibrated on training
clips) variants sit beside ``model.onnx`` with their agreement with fp32 recorded in the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from inference.errors import InputError
from inference.views import make_views

FORMAT_VERSION = 1
OPSET = 17
VIEW_INDEX = {"O": 0, "L": 1, "R": 2}
RTOL, ATOL = 1e-3, 1e-4  # ATOL is relative to the largest |logit| (see check_parity)
VARIANT_TARGETS = {"top1_agreement": 0.99, "uf1_drop": 0.01}


class PackagedModel(nn.Module):
    """What ``model.onnx`` computes, as a PyTorch module (the parity reference)."""

    def __init__(self, view_model, normalisation: dict, size: int):
        super().__init__()
        self.vm = view_model.eval()
        self.size = int(size)
        scale = float(normalisation.get("pixel_scale", 1.0))
        mean = torch.tensor(normalisation["mean"], dtype=torch.float32).view(1, 3, 1, 1, 1)
        std = torch.tensor(normalisation["std"], dtype=torch.float32).view(1, 3, 1, 1, 1)
        # (x01 * scale - mean) / std  ==  x01 * a + b
        self.register_buffer("a", scale / std)
        self.register_buffer("b", -mean / std)
        self.sbml = view_model.scheme == "sbml"
        self.eval()  # the exporter restores a module's mode after export: it must be eval to begin with

    def prepare(self, clips: torch.Tensor) -> torch.Tensor:
        from training.data import resize_frames

        x = clips.permute(0, 4, 1, 2, 3).float() / 255.0  # (N, 3, T, S, S)
        n, c, t, s, _ = x.shape
        x = resize_frames(x.reshape(n, c * t, s, s), self.size).reshape(n, c, t, self.size, self.size)
        return x * self.a + self.b

    def forward(self, clips: torch.Tensor, views: torch.Tensor | None = None):
        x = self.prepare(clips)
        n = x.shape[0]
        if self.sbml:
            chosen = torch.stack(make_views(x, "OLR")).index_select(0, views)
            v = chosen.shape[0]
            feats = self.vm.backbone.forward_features(chosen.reshape((v * n,) + tuple(x.shape[1:])))
            logits = self.vm.backbone.fc(feats).reshape(v, n, -1)
            return logits.sum(0).softmax(-1), logits
        logits = self.vm(x, self.vm.train_views)
        return logits.softmax(-1), logits


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ort_session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("export checks the package in ONNX Runtime: install requirements/serve-cpu.txt "
                         "(or serve-gpu.txt) next to requirements/train.txt") from None
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _feeds(sbml: bool, clips: np.ndarray, views: str) -> dict:
    feeds = {"clips": clips}
    if sbml:
        feeds["views"] = np.array([VIEW_INDEX[v] for v in views], np.int64)
    return feeds


def export_onnx(packaged: PackagedModel, path: Path, n_frames: int, crop_size: int) -> None:
    clips = torch.zeros((2, n_frames, crop_size, crop_size, 3), dtype=torch.uint8)
    names, dyn = ["clips"], {"clips": {0: "batch"}, "probs": {0: "batch"}}
    args: tuple = (clips,)
    if packaged.sbml:
        args = (clips, torch.tensor([0, 1, 2]))
        names.append("views")
        dyn.update(views={0: "views"}, view_logits={0: "views", 1: "batch"})
        outputs = ["probs", "view_logits"]
    else:
        dyn.update(logits={0: "batch"})
        outputs = ["probs", "logits"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(packaged, args, str(path), dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=outputs, dynamic_axes=dyn, do_constant_folding=True)


def check_parity(packaged: PackagedModel, onnx_path: Path, clips: np.ndarray, views: str) -> dict:
    """ONNX Runtime against PyTorch on the same clips; raises InputError on a mismatch."""
    import onnx

    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    session = _ort_session(onnx_path)
    ort_probs, ort_logits = session.run(None, _feeds(packaged.sbml, clips, views))
    packaged.eval()
    with torch.no_grad():
        args = (torch.from_numpy(clips),)
        if packaged.sbml:
            args += (torch.tensor([VIEW_INDEX[v] for v in views]),)
        pt_probs, pt_logits = (t.numpy() for t in packaged(*args))
    diff = float(np.abs(ort_logits - pt_logits).max())
    # float32 rounding follows the size of the numbers summed, not of the result: a logit near zero in a model whose
    # logits reach 10 carries ~10x the absolute error of one whose logits stay near 1. So atol scales with them.
    # Measured on the tiny 3D ResNet (logits up to ~9): ONNX Runtime and PyTorch differ by 3-8e-6 x the largest logit.
    atol = ATOL * max(1.0, float(np.abs(pt_logits).max()))
    bad = ~np.isclose(ort_logits, pt_logits, rtol=RTOL, atol=atol)
    same_argmax = bool((ort_probs.argmax(-1) == pt_probs.argmax(-1)).all())
    if bad.any() or not same_argmax:
        raise InputError(f"{onnx_path}: ONNX Runtime disagrees with PyTorch (max |Δlogit| {diff:.3g}, "
                         f"{int(bad.sum())} logits outside rtol {RTOL} / atol {atol:.3g}, same argmax: {same_argmax}); "
                         f"the export is wrong — please report it with the checkpoint")
    return {"clips": int(len(clips)), "views": views, "max_abs_logit_diff": diff, "rtol": RTOL, "atol": atol,
            "same_argmax": same_argmax}


def predict_onnx(path: Path, clips: np.ndarray, sbml: bool, views: str, batch: int = 8) -> np.ndarray:
    session = _ort_session(path)
    out = [session.run(["probs"], _feeds(sbml, clips[i:i + batch], views))[0] for i in range(0, len(clips), batch)]
    return np.concatenate(out)


def variant_agreement(reference: np.ndarray, variant: np.ndarray, labels: np.ndarray | None, n_classes: int) -> dict:
    from training.metrics import scores

    agree = float((reference.argmax(1) == variant.argmax(1)).mean())
    report = {"top1_agreement": round(agree, 4), "clips": int(len(reference))}
    if labels is not None:
        uf1_ref = scores(labels, reference.argmax(1), n_classes)["uf1"]
        uf1_var = scores(labels, variant.argmax(1), n_classes)["uf1"]
        report.update(uf1_fp32=round(uf1_ref, 4), uf1=round(uf1_var, 4), uf1_drop=round(uf1_ref - uf1_var, 4))
    report["meets_target"] = bool(agree >= VARIANT_TARGETS["top1_agreement"]
                                  and report.get("uf1_drop", 0.0) <= VARIANT_TARGETS["uf1_drop"])
    return report


def make_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    # The graph's own Cast nodes (uint8 pixels → float) must keep producing float32: the converter would only
    # relabel their outputs. They are blocked by name (blocking the op type makes the converter loop over the
    # casts it inserts itself). The rest runs in fp16; inputs and outputs keep their types.
    # The fusion at the end (sum of view logits, softmax) stays in float32 too: it reads a graph output,
    # which the converter otherwise leaves mistyped.
    model = onnx.load(str(src))
    keep = [n.name for n in model.graph.node if n.op_type in ("Cast", "ReduceSum", "Softmax")]
    model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    onnx.save(model, str(dst))


def make_int8(src: Path, dst: Path, calibration: np.ndarray, sbml: bool, views: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([_feeds(sbml, calibration[i:i + 1], views) for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        # The first convolution (raw pixels in) and the classifier (logits out) stay in float, as is usual:
        # measured on the synthetic set, that halves the largest probability error and keeps the top class.
        nodes = onnx.load(str(prepared)).graph.node
        convs = [n.name for n in nodes if n.op_type == "Conv"]
        keep = convs[:1] + [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")]
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=keep)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def versions() -> dict:
    import onnx

    out = {"torch": torch.__version__, "onnx": onnx.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out


def assemble(folder: Path, out: Path) -> None:
    """Move a finished package from its temporary folder into place (an existing package is replaced)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        old = out.with_name(f".{out.name}.old.{int(time.time())}")
        os.replace(out, old)
        os.replace(folder, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(folder, out)
