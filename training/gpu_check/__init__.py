"""``python -m training.gpu_check --out DIR [--dry-run]``: the whole GPU path proven, or disproven, by one command.

On one H100/H200 it imports the libraries, then runs in this order and within about 8 minutes (each step has a
budget, 460 s in all, and is stopped at it) five steps, printing every figure as it comes and rewriting
``DIR/gpu_check.json`` and ``DIR/gpu_check.md`` atomically after each figure (``DIR/loso.log``, ``DIR/loso-child.log``
and ``DIR/export.log`` hold the runs' and the child commands' output):

1. **environment**: GPU, driver, torch / CUDA / cuDNN, bf16 support and a measured bf16 matrix-product rate, which
   ONNX Runtime imports (a ``--target`` install of onnxruntime-gpu must shadow the image's CPU one) and its providers;
2. **training step** (``tools.bench.training``'s machinery): the engine's step against the reference-code-style step,
   3D-ResNeXt-101 SBML OLR, 34 × 112², batch 10: clips/s, MFU against the GPU's bf16 dense peak (by device name,
   datasheet figures; unknown GPU: MFU not computed), speed-up, the implied full SMIC-HS LOSO time;
3. **LOSO, killed and resumed**: a synthetic SMIC-HS cache (2 subjects, faces cropped at their true landmarks, so no
   MTCNN is needed), 2 folds × 2 epochs of the same network, run uninterrupted; run again in a subprocess that is
   SIGKILLed mid-fold once a fold's checkpoint exists, then resumed. **"Same"**: all three runs use deterministic
   algorithms (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN autotuning off,
   ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) and the same seeds, so the resumed run is expected to be bit-identical; what
   is asserted is that every clip's predicted class is identical and the fused probabilities differ by at most 1e-3
   (room for the last-bit noise of an op without a deterministic CUDA kernel, which the report lists by name; a resume
   that skipped, repeated or restarted an epoch moves them far more). Whether the rows are bit-identical is reported;
4. **export** of that fold's model with ``python -m export --fp16`` (fp32 and fp16 ONNX, CPU parity inside), then
   parity on the device: the fp32 graph in ONNX Runtime against PyTorch on CUDA (fp32, TF32 off, training's own
   evaluation path) within export's tolerances; ONNX Runtime's CUDA provider (the session must report
   ``CUDAExecutionProvider`` first, no silent CPU fallback) clips/s against PyTorch eager on the same GPU. Where the
   ONNX Runtime that imports has no CUDA provider, that part is reported as not measurable, with the reason;
5. **face**: MTCNN alignment on CUDA equals the CPU result (crop matrices within tests/test_face.py's 0.05), clips/s.

Each step catches its own failure (recorded with the traceback's tail) and the next one runs: one call tells the whole
story. The exit status is 0 when no step failed (skipped parts and missed targets are reported, not failures).

Without a GPU the CUDA steps are "skipped: no CUDA". ``--dry-run`` runs the same steps with the tiny 3D ResNet at tiny
sizes (on the CPU unless ``--device`` says otherwise), so CI exercises the machinery on every change; the parts that
need CUDA say "skipped: no CUDA". The one ``run`` command for a lent device machine, and the wheels it carries, come
from ``tools/device_wheels.py``.
"""
