"""Build the face stage's ONNX networks: MTCNN's P-Net, R-Net and O-Net from facenet-pytorch's own weights.

    python tools/make_face_onnx.py            # writes inference/assets/mtcnn/{pnet,rnet,onet}.onnx
    python tools/make_face_onnx.py --check    # rebuild in a temporary folder and compare with the shipped files

The weights ship inside the facenet-pytorch package (``facenet_pytorch/data/{p,r,o}net.pt``, MIT licence; converted
by its author from the MTCNN authors' release through davidsandberg/facenet). Each network is exported once, with a
dynamic batch axis (and, for P-Net, dynamic height and width: it runs on every level of the image pyramid), and
checked against PyTorch on random inputs. The serving path (:mod:`inference.face`) loads only these ONNX files; it
never imports torch. Needs the training requirements (torch, facenet-pytorch) and onnx.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "inference" / "assets" / "mtcnn"
OPSET = 17

# name → (class name, example input size, output names, dynamic axes of the input)
NETS = {
    "pnet": ("PNet", 12, ["reg", "prob"], {0: "batch", 2: "height", 3: "width"}),
    "rnet": ("RNet", 24, ["reg", "prob"], {0: "batch"}),
    "onet": ("ONet", 48, ["reg", "points", "prob"], {0: "batch"}),
}


def export(out: Path) -> dict[str, Path]:
    import onnx
    import onnxruntime as ort
    import torch
    from facenet_pytorch.models import mtcnn

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (cls, size, outputs, dyn) in NETS.items():
        net = getattr(mtcnn, cls)(pretrained=True).eval()
        example = torch.zeros(1, 3, size, size)
        path = out / f"{name}.onnx"
        axes = {"input": dyn, **{o: {0: "batch"} for o in outputs}}
        if name == "pnet":
            axes.update({o: {0: "batch", 2: "rows", 3: "cols"} for o in outputs})
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
        model = onnx.load(str(path))
        model.doc_string = (f"MTCNN {cls} (Zhang et al. 2016), weights from facenet-pytorch 2.5.3 "
                            f"(MIT; converted from davidsandberg/facenet). Built by tools/make_face_onnx.py.")
        model.producer_name = "tools/make_face_onnx.py"
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        # parity on random inputs, several shapes for P-Net
        rng = np.random.default_rng(0)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shapes = [(3, size, size), (5, size, size)] + ([(2, 37, 51), (1, 120, 160)] if name == "pnet" else [])
        for n, h, w in shapes:
            x = rng.uniform(-1, 1, (n, 3, h, w)).astype(np.float32)
            with torch.inference_mode():
                ref = [t.numpy() for t in net(torch.from_numpy(x))]
            got = sess.run(None, {"input": x})
            worst = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
            if worst > 1e-4:
                raise SystemExit(f"{name}: ONNX Runtime differs from PyTorch by {worst:.2e} on {x.shape}")
        written[name] = path
        print(f"{path.relative_to(out.parent.parent.parent) if out == OUT else path}: "
              f"{path.stat().st_size / 1024:.0f} KiB, parity with PyTorch OK")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help="folder to write the .onnx files to (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="export into a temporary folder and say whether the networks equal the shipped ones")
    a = p.parse_args(argv)
    if not a.check:
        export(a.out)
        return 0
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        fresh = export(Path(tmp))
        same = True
        for name, path in fresh.items():
            shipped = onnx.load(str(OUT / f"{name}.onnx"))
            digest = lambda m: hashlib.sha256(  # noqa: E731
                b"".join(onnx.numpy_helper.to_array(t).tobytes() for t in m.graph.initializer)).hexdigest()
            ok = digest(onnx.load(str(path))) == digest(shipped)
            same &= ok
            print(f"{name}: weights {'equal' if ok else 'DIFFER from'} the shipped file")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
