"""``python tools/device_wheels.py``: the wheels a lent GPU machine lacks for ``python -m training.gpu_check``,
downloaded into ``.whl/`` (ignored by git, carried by the device tool), the size of everything that travels, and the
one ``run`` command that installs them there and runs the check.

The device image (the device tool's KINDS.md, read 2026-11-17) has Python 3.12, torch 2.11 (CUDA 13.0), torchvision,
onnx, a CPU-only onnxruntime 1.30, OpenCV, scikit-image, scikit-learn, matplotlib, tensorboard, PyYAML, tqdm and
huggingface_hub; nothing can be fetched there. The check needs one more, pure Python, pinned as the project pins
it (requirements/train.txt):

- ``onnxconverter-common`` (``python -m export --fp16``, step 4), 0.1 MB.

The face stage is ONNX (``inference/mtcnn.py``, the networks shipped in ``inference/assets/mtcnn/``): it needs no
facenet-pytorch, and step 5 runs it on CUDA only where ONNX Runtime has its CUDA provider (see below).

Not carried: ``onnxruntime-gpu`` 1.31.1 for Python 3.12 is built for CUDA 13.0 and cuDNN 9, which torch's own nvidia-*
wheels on the device provide, but its wheel is 244 MiB (the CUDA provider library alone 231 MiB compressed), far over
the 64 MiB that may travel with a call; step 4 reports ONNX Runtime on CUDA as not measurable there and checks parity
with the CPU ONNX Runtime against PyTorch on CUDA. PyAV and openpyxl are not needed: the check decodes no video and
reads no spreadsheet (its synthetic cache is rendered straight from the face generator).

``--check`` downloads nothing: it prints what is in ``.whl/``, the travelling size and the command. ``--keep DIR``
copies a report that came back from the device (``gpu_check.json``, ``.md`` and the logs) into
``results/<date>_<gpu>/``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ".whl"
WHEELS = {"onnxconverter-common": "1.16.0"}
LIMIT_MIB = 64  # the device tool: tracked + untracked-not-ignored files + shared/ + carried paths, per call
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
# The image's Python packages (KINDS.md, "Python packages already there", read on a machine on 2026-11-17)
DEVICE_HAS = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
# The device tool's `run`: command (at most 2,000 characters), carry, timeout_s. The check's step budgets add up to
# 460 s, after about 10-20 s of imports.
COMMAND = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
           ".whl/*.whl && export PYTHONPATH=/tmp/site || exit; nvidia-smi; "
           "PYTHONUNBUFFERED=1 python3 -m training.gpu_check --out $OUT/gpu")
CARRY = [DEST]
TIMEOUT_S = 600


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Onnx_Converter.common`` → ``onnx-converter-common``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return normalise(path.name.split("-")[0])


def travelling_files(root: Path = ROOT) -> list[Path]:
    """What a device call sends: tracked and untracked-not-ignored files, ``shared/`` if the checkout has one, and the
    carried ``.whl/``."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    files = {root / p for p in out.split("\0") if p}
    for extra in ("shared", DEST):
        if (root / extra).is_dir():
            files |= {p for p in (root / extra).rglob("*") if p.is_file()}
    return sorted(p for p in files if p.is_file())


def mib(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 2**20


def download(dest: Path) -> None:
    dest.mkdir(exist_ok=True)
    for old in dest.glob("*.whl"):  # one version of each: two stop the whole install on the device
        if wheel_name(old) not in WHEELS or f"-{WHEELS[wheel_name(old)]}-" not in old.name:
            old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest),
           *[f"{k}=={v}" for k, v in WHEELS.items()]]
    subprocess.run(cmd, check=True)


def keep(report: Path, results: Path = ROOT / "results") -> Path:
    """Copy a GPU check's report folder into ``results/<date>_<gpu>/`` (named from its ``gpu_check.json``)."""
    data = json.loads((report / "gpu_check.json").read_text())
    gpu = re.sub(r"[^A-Za-z0-9.]+", "-", data["device"].replace("NVIDIA ", "")).strip("-")
    dest = results / f"{data['started'][:10]}_{gpu}"
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(report.iterdir()):
        if f.suffix in (".json", ".md", ".log"):
            shutil.copyfile(f, dest / f.name)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/device_wheels.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="download nothing; report what is there")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="copy a report that came back from the device into results/<date>_<gpu>/ and stop")
    args = p.parse_args(argv)
    if args.keep:
        print(f"kept in {keep(args.keep).relative_to(ROOT)}")
        return 0
    dest = ROOT / DEST
    if not args.check:
        download(dest)
    have = {wheel_name(w): w.name for w in dest.glob("*.whl")} if dest.is_dir() else {}
    missing = sorted(set(WHEELS) - set(have))
    tree = [f for f in travelling_files() if DEST not in f.relative_to(ROOT).parts[:1]]
    carried = sorted(dest.glob("*")) if dest.is_dir() else []
    total = mib(tree) + mib(carried)
    print(f"wheels in {DEST}/: {', '.join(sorted(have.values())) or 'none'}"
          + (f"; MISSING: {', '.join(missing)} (run without --check)" if missing else ""))
    print(f"travels: working tree {mib(tree):.1f} MiB + {DEST}/ {mib(carried):.1f} MiB = {total:.1f} MiB "
          f"(limit {LIMIT_MIB} MiB){'' if total <= LIMIT_MIB else ': TOO LARGE'}")
    print(f"device run: carry={CARRY}, timeout_s={TIMEOUT_S}, command ({len(COMMAND)} characters):\n{COMMAND}")
    return 0 if not missing and total <= LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
