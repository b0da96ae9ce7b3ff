"""Checkpoint → model package: ``model.onnx`` + ``config.json`` + ``README.md`` (the model card).

The ONNX graph takes exactly what the runtime's core path produces — the aligned face clip as uint8
``(N, T, S, S, 3)`` RGB at the face-crop size, or for a motion model the uint8 motion input made from it as the
training cache held it (a flow image ``(N, 1, F, F, 3)`` of u, v, strain; a flow clip; magnified faces) — and does
inside the graph what training did after the cache: resize to the network's input size (the same bilinear resize as
training's evaluation), normalise (flow: centred on its zero-motion value), build the Décalcomanie views (flow: u
negated in the mirrored half), run the backbone and fuse:

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
from inference.inputs import Preprocessing
from inference.package import Parity
from inference.views import view_indices

OPSET = 17
STEM_CHOICES = ("int8", "float")  # how the int8 variant treats the first convolution
RTOL, ATOL = 1e-3, 1e-4  # ATOL is relative to the largest |logit| (see check_parity)
VARIANT_TARGETS = {"top1_agreement": 0.99, "uf1_drop": 0.01}


class PackagedModel(nn.Module):
    """What ``model.onnx`` computes, as a PyTorch module (the parity reference).

    Its input is the package's uint8 clip ``(N, T, S, S, 3)`` — aligned faces, or the motion input made from them —
    and it does what training's evaluation did after the clip bank, as the model's one
    :class:`inference.inputs.Preprocessing` describes it (``ModelPackage.preprocessing()``, equal to the checkpoint
    record's): resize, normalise (flow centred on its zero motion: a constant for "fixed" scaling and grey levels,
    measured on each image inside the graph for "minmax", at the channels the input kind's row names), the views
    (``ViewModel.views``: on flow the mirrored half negates u), the backbone and the fusion."""

    def __init__(self, view_model, preprocessing: Preprocessing):
        super().__init__()
        pre = preprocessing
        self.vm = view_model.eval()
        self.size = int(pre.size)
        self.uv, self.strain = pre.uv, pre.strain
        mean = torch.tensor(pre.mean_for(), dtype=torch.float32).view(1, 3, 1, 1, 1)
        std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1, 1)
        # "minmax" flow: (rows, cols) of the central region its zero is measured on
        self.measured = pre.region() if pre.measured else None
        # (x01 * scale - mean) / std  ==  x01 * a + b   (measured zeros: b per clip and frame, in forward)
        self.register_buffer("a", pre.pixel_scale / std)
        self.register_buffer("b", -mean / std)
        self.register_buffer("inv_std", 1.0 / std)
        self.sbml = view_model.scheme == "sbml"
        self.eval()  # the exporter restores a module's mode after export: it must be eval to begin with

    def zero(self, clips: torch.Tensor) -> torch.Tensor:
        """The stored zero-motion values of min-max flow clips ``(N, T, S, S, 3)`` uint8, ``(N, 3, T, 1, 1)`` in 0–1
        units: u and v their median over the central region (numpy's median: the mean of the two middle values),
        strain its minimum — :meth:`inference.inputs.InputKind.zeros` in graph operations."""
        rows, cols = self.measured
        n, t = clips.shape[:2]
        parts = [None, None, None]
        for c in self.uv:
            region = clips[:, :, rows, cols, c].float()
            m = region.shape[2] * region.shape[3]
            ordered = torch.sort(region.reshape(n, t, m), dim=2).values
            parts[c] = 0.5 * (ordered[:, :, (m - 1) // 2] + ordered[:, :, m // 2])
        parts[self.strain] = clips[..., self.strain].float().amin(dim=(2, 3))
        return torch.stack(parts, dim=1)[..., None, None] / 255.0

    def prepare(self, clips: torch.Tensor) -> torch.Tensor:
        from training.data import resize_frames

        x = clips.permute(0, 4, 1, 2, 3).float() / 255.0  # (N, 3, T, S, S)
        n, c, t, s, _ = x.shape
        x = resize_frames(x.reshape(n, c * t, s, s), self.size).reshape(n, c, t, self.size, self.size)
        if self.measured is not None:
            return x * self.a - self.zero(clips) * self.inv_std
        return x * self.a + self.b

    def forward(self, clips: torch.Tensor, views: torch.Tensor | None = None):
        x = self.prepare(clips)
        n = x.shape[0]
        if self.sbml:
            chosen = torch.stack(self.vm.views(x, "OLR")).index_select(0, views)
            v = chosen.shape[0]
            feats = self.vm.backbone.forward_features(chosen.reshape((v * n,) + tuple(x.shape[1:])))
            logits = self.vm.backbone.fc(feats).reshape(v, n, -1)
            return logits.sum(0).softmax(-1), logits
        logits = self.vm(x, self.vm.train_views)
        return logits.softmax(-1), logits


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
        feeds["views"] = view_indices(views)
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


def check_parity(packaged: PackagedModel, onnx_path: Path, clips: np.ndarray, views: str) -> Parity:
    """ONNX Runtime against PyTorch on the same clips; raises InputError on a mismatch."""
    import onnx

    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    session = _ort_session(onnx_path)
    ort_probs, ort_logits = session.run(None, _feeds(packaged.sbml, clips, views))
    packaged.eval()
    with torch.no_grad():
        args = (torch.from_numpy(clips),)
        if packaged.sbml:
            args += (torch.from_numpy(view_indices(views)),)
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
    return Parity(clips=int(len(clips)), views=views, max_abs_logit_diff=diff, rtol=RTOL, atol=atol,
                  same_argmax=same_argmax)


def predict_onnx(path: Path, clips: np.ndarray, sbml: bool, views: str, batch: int = 8) -> np.ndarray:
    session = _ort_session(path)
    out = [session.run(["probs"], _feeds(sbml, clips[i:i + batch], views))[0] for i in range(0, len(clips), batch)]
    return np.concatenate(out)


def variant_agreement(reference: np.ndarray, variant: np.ndarray, labels: np.ndarray | None, n_classes: int) -> dict:
    from training.metrics import scores

    agree = float((reference.argmax(1) == variant.argmax(1)).mean())
    report = {"top1_agreement": round(agree, 4),
              "max_abs_prob_diff": round(float(np.abs(reference - variant).max()), 4), "clips": int(len(reference))}
    if labels is not None:
        uf1_ref = scores(labels, reference.argmax(1), n_classes)["uf1"]
        uf1_var = scores(labels, variant.argmax(1), n_classes)["uf1"]
        report.update(uf1_fp32=round(uf1_ref, 4), uf1=round(uf1_var, 4), uf1_drop=round(uf1_ref - uf1_var, 4))
    report["meets_target"] = bool(agree >= VARIANT_TARGETS["top1_agreement"]
                                  and report.get("uf1_drop", 0.0) <= VARIANT_TARGETS["uf1_drop"])
    return report


def embed_metadata(path: Path, facts: dict[str, str]) -> None:
    """Write ``facts`` (``ModelPackage.onnx_metadata``) into the graph file's ONNX ``metadata_props``, as ultralytics
    does, so that the file says what it is without its ``config.json``. Other metadata the file holds is kept."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, **{k: str(v) for k, v in facts.items()}})
    onnx.save(model, str(path))


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


def fold_temporal_stem(model) -> bool:
    """Rewrite the graph's first 3D convolution (``kt×kh×kw`` over ``C`` channels, temporal stride 1) as the same
    sum over ``kt·C`` channels of a ``1×kh×kw`` convolution: pad time, stack the ``kt`` shifted copies of the
    clip along channels (shift-major), and reorder the weights to match. Exact up to float rounding.

    Why: the 3D-ResNet stem sees only 3 channels, for which CPU int8 kernels do not exist — OpenVINO dequantises it
    and runs float, and at 34×112² × 3 views it was half of the int8 model's time. With 21 channels it has an int8
    kernel (measured on this project's 2-core CPU: 195 ms → 68 ms for OLR at 34×112²). Returns False, changing nothing,
    when the first convolution is not of that kind.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    conv = next((n for n in graph.node if n.op_type == "Conv"), None)
    inits = {t.name: t for t in graph.initializer}
    if conv is None or conv.input[1] not in inits:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weight = numpy_helper.to_array(inits[conv.input[1]])
    if weight.ndim != 5 or attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return False
    kt, kh, kw = weight.shape[2:]
    strides = list(attrs.get("strides", [1, 1, 1]))
    dilations = list(attrs.get("dilations", [1, 1, 1]))
    pads = list(attrs.get("pads", [0] * 6))
    if kt < 2 or strides[0] != 1 or dilations[0] != 1:
        return False
    out_ch, in_ch = weight.shape[:2]
    prefix = f"{conv.name or 'stem'}_tfold"
    folded = np.ascontiguousarray(weight.transpose(0, 2, 1, 3, 4).reshape(out_ch, kt * in_ch, 1, kh, kw))
    consts = {
        f"{prefix}_pads": np.array([0, 0, pads[0], 0, 0, 0, 0, pads[3], 0, 0], np.int64),
        f"{prefix}_axes": np.array([2], np.int64),
        f"{prefix}_weight": folded,
    }
    nodes = [helper.make_node("Pad", [conv.input[0], f"{prefix}_pads"], [f"{prefix}_padded"], name=f"{prefix}_pad")]
    shifted = []
    for k in range(kt):
        end = k - (kt - 1) if k < kt - 1 else np.iinfo(np.int64).max  # every slice is as long as the output
        consts[f"{prefix}_start{k}"] = np.array([k], np.int64)
        consts[f"{prefix}_end{k}"] = np.array([end], np.int64)
        shifted.append(f"{prefix}_shift{k}")
        nodes.append(helper.make_node("Slice", [f"{prefix}_padded", f"{prefix}_start{k}", f"{prefix}_end{k}",
                                                f"{prefix}_axes"], [shifted[-1]], name=f"{prefix}_slice{k}"))
    nodes.append(helper.make_node("Concat", shifted, [f"{prefix}_stacked"], axis=1, name=f"{prefix}_concat"))
    nodes.append(helper.make_node(
        "Conv", [f"{prefix}_stacked", f"{prefix}_weight", *conv.input[2:]], list(conv.output), name=conv.name,
        kernel_shape=[1, kh, kw], strides=[1, *strides[1:]], dilations=[1, *dilations[1:]],
        pads=[0, pads[1], pads[2], 0, pads[4], pads[5]]))
    at = list(graph.node).index(conv)
    graph.node.remove(conv)
    for i, node in enumerate(nodes):
        graph.node.insert(at + i, node)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    if not any(conv.input[1] in n.input for n in graph.node):
        graph.initializer.remove(inits[conv.input[1]])
    return True


def make_int8(src: Path, dst: Path, calibration: np.ndarray, sbml: bool, views: str, stem: str = "int8") -> str:
    """Static QDQ int8 (per-channel weights, uint8 activations) calibrated on ``calibration`` clips.

    ``stem="int8"`` folds the first 3D convolution (see ``fold_temporal_stem``) and quantises it with the rest;
    ``stem="float"`` leaves it unfolded in float, as the classifier always is. Returns what the stem became:
    "float" also when ``stem="int8"`` was asked for a first convolution that does not fold (e.g. a temporal stride).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([_feeds(sbml, calibration[i:i + 1], views) for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    import onnx

    if stem not in STEM_CHOICES:
        raise InputError(f"int8 stem must be one of {', '.join(STEM_CHOICES)}, not {stem!r}")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        keep = [n.name for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]  # logits stay float
        if stem == "int8" and fold_temporal_stem(model):
            onnx.save(model, str(prepared))
        else:
            stem = "float"
            keep += [n.name for n in model.graph.node if n.op_type == "Conv"][:1]
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=keep)
    return stem


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
