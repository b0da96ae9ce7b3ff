"""Model packages on the Hub: the real ``huggingface_hub`` client against a local Hub endpoint (tests/hub_server.py).

Nothing here may reach the internet: the client is pointed at the local server (``HF_ENDPOINT`` and the client's
import-time constants), telemetry is off, and DNS for anything but loopback is refused for the whole module.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inference.errors import InputError
from inference.hub import UnpinnedRevisionWarning, parse_model_ref, resolve_package, resolved_commit
from inference.package import PACKAGE_FILES
from tests.hub_server import LocalHub, point_client_at

ROOT = Path(__file__).resolve().parent.parent
PUSHED = ("model.onnx", "config.json", "README.md")

CARD = """---
license: mit
library_name: onnx
pipeline_tag: video-classification
tags:
- onnx
- micro-expression
- decalcomanie
metrics:
- f1
- recall
- accuracy
model-index:
- name: decalcomanie-smic-{tag}
  results:
  - task:
      type: video-classification
      name: Micro-expression recognition
    dataset:
      type: smic-hs
      name: SMIC-HS (3 classes, leave-one-subject-out)
    metrics:
    - type: uf1
      value: {uf1}
      name: UF1
    - type: uar
      value: 0.702
      name: UAR
    - type: war
      value: 0.713
      name: WAR
---

# Décalcomanie micro-expression model ({tag})

A test card.
"""


def make_package(folder: Path, tag: str = "v1", seed: int = 0, uf1: float = 0.691, int8: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(bytes((i * 7 + seed * 13) % 256 for i in range(6000)))
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "labels": ["negative", "positive",
                                                                                  "surprise"], "seed": seed}))
    (folder / "README.md").write_text(CARD.format(tag=tag, uf1=uf1))
    (folder / "notes.txt").write_text("local notes, never uploaded\n")
    if int8:
        (folder / "model.int8.onnx").write_bytes(bytes((i * 3 + seed) % 256 for i in range(3000)))
    return folder


# --------------------------------------------------------------------------------------------------------------------
# Fixtures: no network but loopback; one local Hub for the module; the client's settings pointed at it.


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise OSError(f"test_hub: network access to {host!r} refused (loopback only)")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    yield
    socket.getaddrinfo = real


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    with LocalHub(root / "server") as server, pytest.MonkeyPatch.context() as mp:
        point_client_at(mp, server.endpoint, root / "hf-home")
        yield server
    assert not server.unhandled, f"the client called routes the local Hub lacks: {server.unhandled}"
    assert all(p for _, p in server.requests)


@pytest.fixture(scope="module")
def released(hub, tmp_path_factory):
    """lab/mer-smic with two releases: v1 (package A), then v2 (package B, changed files + an int8 variant)."""
    from export.push import push_package

    base = tmp_path_factory.mktemp("pkgs")
    a = make_package(base / "a", tag="v1", seed=1, uf1=0.691)
    b = make_package(base / "b", tag="v2", seed=2, uf1=0.744, int8=True)
    first = push_package(a, "lab/mer-smic", revision="v1")
    second = push_package(b, "lab/mer-smic", revision="v2", commit_message="v2: retrained")
    return {"a": a, "b": b, "v1": first, "v2": second}


def assert_same_package(downloaded: Path, source: Path) -> None:
    expected = sorted(n for n in PACKAGE_FILES if (source / n).is_file())
    assert sorted(os.listdir(downloaded)) == expected  # only package files: no notes.txt, no .gitattributes
    for name in expected:
        assert (downloaded / name).read_bytes() == (source / name).read_bytes(), name


# --------------------------------------------------------------------------------------------------------------------
# The local Hub answers as the Hub does


def test_local_hub_resolve_route(hub, released):
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    from tests.hub_server import git_blob_sha1

    data = (released["a"] / "model.onnx").read_bytes()
    meta = get_hf_file_metadata(hf_hub_url("lab/mer-smic", "model.onnx", revision="v1"))
    assert (meta.commit_hash, meta.etag, meta.size) == (released["v1"]["commit"], git_blob_sha1(data), len(data))
    assert meta.xet_file_data is None  # no X-Xet-Hash: plain HTTP downloads
    url = f"{hub.endpoint}/lab/mer-smic/resolve/v1/model.onnx"
    part = httpx2.get(url, headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    for url, error in ((hf_hub_url("lab/mer-smic", "model.onnx", revision="v404"), RevisionNotFoundError),
                       (hf_hub_url("lab/none", "model.onnx", revision="v1"), RepositoryNotFoundError),
                       (hf_hub_url("lab/mer-smic", "notes.txt", revision="v1"), RemoteEntryNotFoundError)):
        with pytest.raises(error):
            get_hf_file_metadata(url)


# --------------------------------------------------------------------------------------------------------------------
# References and local folders


def test_parse_model_ref_forms():
    assert parse_model_ref("hf://lab/mer-smic") == ("lab/mer-smic", None)
    assert parse_model_ref("hf://lab/mer-smic@v1.2") == ("lab/mer-smic", "v1.2")
    assert parse_model_ref("hf://lab/mer.smic_2@" + "a" * 40) == ("lab/mer.smic_2", "a" * 40)
    assert parse_model_ref("hf://Lab-X/m@release/2024") == ("Lab-X/m", "release/2024")
    for bad in ("lab/mer-smic", "hf://mer-smic", "hf://lab/mer-smic@", "hf://lab/mer smic", "hf://a/b/c",
                "hf://lab/mer--smic", "hf://lab/m@v1..2", "hf:/lab/m", "https://huggingface.co/lab/m"):
        with pytest.raises(InputError, match=r"hf://OWNER/NAME"):
            parse_model_ref(bad)


def test_local_folder_is_checked(tmp_path):
    pkg = make_package(tmp_path / "pkg")
    assert resolve_package(pkg) == pkg
    assert resolve_package(str(pkg)) == pkg
    (pkg / "model.onnx").unlink()
    with pytest.raises(InputError, match="model.onnx missing"):
        resolve_package(pkg)
    with pytest.raises(InputError, match="no such model package folder"):
        resolve_package(tmp_path / "nowhere")
    with pytest.raises(InputError):
        resolved_commit(tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# Push, then download by tag and by commit


def test_push_uploads_only_package_files_and_tags(hub, released):
    v1, v2 = released["v1"], released["v2"]
    assert len(v1["commit"]) == 40 and v1["commit"] != v2["commit"]
    assert v1["revision"] == "v1" and v1["ref"] == "hf://lab/mer-smic@v1" and v1["created_commit"]
    assert v1["files"] == ["model.onnx", "config.json", "README.md"]
    assert v1["url"] == f"{hub.endpoint}/lab/mer-smic/tree/v1"
    refs = hub.refs("lab/mer-smic")
    assert refs["tags"] == {"v1": v1["commit"], "v2": v2["commit"]}
    assert refs["branches"]["main"] == v2["commit"]
    at_v1 = hub.files_at("lab/mer-smic", "v1")
    assert set(at_v1) == {".gitattributes", *PUSHED}  # notes.txt stayed local
    assert at_v1["model.onnx"] == (released["a"] / "model.onnx").read_bytes()
    assert "model.int8.onnx" in hub.files_at("lab/mer-smic", "v2")


def test_download_by_tag_and_by_commit(hub, released, tmp_path):
    cache = tmp_path / "cache"
    by_tag = resolve_package("hf://lab/mer-smic@v1", cache_dir=cache)
    assert by_tag.name == released["v1"]["commit"] == resolved_commit(by_tag)
    assert_same_package(by_tag, released["a"])
    by_commit = resolve_package(f"hf://lab/mer-smic@{released['v1']['commit']}", cache_dir=cache)
    assert by_commit == by_tag
    # A second release: each tag resolves to its own content.
    v2 = resolve_package("hf://lab/mer-smic@v2", cache_dir=cache)
    assert v2.name == released["v2"]["commit"] and v2 != by_tag
    assert_same_package(v2, released["b"])
    assert (v2 / "model.int8.onnx").is_file() and not (by_tag / "model.int8.onnx").exists()
    assert (by_tag / "config.json").read_bytes() != (v2 / "config.json").read_bytes()


def test_unpinned_reference_follows_main_and_says_what_to_pin(hub, released, tmp_path):
    with pytest.warns(UnpinnedRevisionWarning, match=f"hf://lab/mer-smic@{released['v2']['commit']}"):
        path = resolve_package("hf://lab/mer-smic", cache_dir=tmp_path)
    assert resolved_commit(path) == released["v2"]["commit"]


def test_cache_is_reused(hub, released, tmp_path):
    commit = released["v1"]["commit"]
    resolve_package(f"hf://lab/mer-smic@{commit}", cache_dir=tmp_path)
    n = len(hub.requests)
    again = resolve_package(f"hf://lab/mer-smic@{commit}", cache_dir=tmp_path)
    assert len(hub.requests) == n  # a pinned commit already cached: not one request
    assert_same_package(again, released["a"])
    resolve_package("hf://lab/mer-smic@v1", cache_dir=tmp_path)
    assert [p for _, p in hub.requests[n:]] == ["/api/models/lab/mer-smic/revision/v1"]  # only the tag lookup


# --------------------------------------------------------------------------------------------------------------------
# Offline


def test_offline_reuses_cache_for_tag_and_commit(hub, released, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = released["v1"]["commit"]
    cache = tmp_path / "cache"
    resolve_package("hf://lab/mer-smic@v1", cache_dir=cache)
    n = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for ref in ("hf://lab/mer-smic@v1", f"hf://lab/mer-smic@{commit}"):
        path = resolve_package(ref, cache_dir=cache)
        assert path.name == commit
        assert_same_package(path, released["a"])
    assert len(hub.requests) == n  # no request reached the Hub
    with pytest.raises(InputError, match="HF_HUB_OFFLINE"):
        resolve_package("hf://lab/mer-smic@v2", cache_dir=cache)  # never downloaded
    with pytest.raises(InputError, match="HF_HUB_OFFLINE"):
        resolve_package(f"hf://lab/mer-smic@{released['v2']['commit']}", cache_dir=cache)
    assert len(hub.requests) == n


def test_offline_env_from_process_start(hub, released, tmp_path):
    """HF_HUB_OFFLINE=1 set before Python starts (how a serving box runs), in a fresh process."""
    cache = tmp_path / "cache"
    resolve_package("hf://lab/mer-smic@v1", cache_dir=cache)
    n = len(hub.requests)
    code = ("import sys; from inference.hub import resolve_package, resolved_commit; "
            "from inference.errors import InputError\n"
            f"print(resolved_commit(resolve_package('hf://lab/mer-smic@v1', cache_dir={str(cache)!r})))\n"
            f"try:\n    resolve_package('hf://lab/mer-smic@v2', cache_dir={str(cache)!r})\n"
            "except InputError as e:\n    print('error:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == released["v1"]["commit"]
    assert lines[1].startswith("error: hf://lab/mer-smic@v2: not in the local cache and offline mode is on")
    assert len(hub.requests) == n


def test_server_down(released, tmp_path):
    """A Hub of its own, stopped after the download: cached tag and commit still resolve, the rest is an InputError."""
    from export.push import push_package

    cache = tmp_path / "cache"
    with LocalHub(tmp_path / "server") as own, pytest.MonkeyPatch.context() as mp:
        point_client_at(mp, own.endpoint, tmp_path / "home")
        commit = push_package(released["a"], "lab/solo", revision="v1")["commit"]
        push_package(released["b"], "lab/solo", revision="v2")
        resolve_package("hf://lab/solo@v1", cache_dir=cache)
        own.stop()
        assert resolve_package("hf://lab/solo@v1", cache_dir=cache).name == commit
        assert resolve_package(f"hf://lab/solo@{commit}", cache_dir=cache).name == commit
        with pytest.raises(InputError, match="cannot be reached and this package is not in the local cache"):
            resolve_package("hf://lab/solo@v2", cache_dir=cache)


# --------------------------------------------------------------------------------------------------------------------
# Clear errors


def test_unknown_repo_and_revision(hub, released, tmp_path):
    with pytest.raises(InputError, match=r"hf://lab/nothing-here@v1: no model repository 'lab/nothing-here'"):
        resolve_package("hf://lab/nothing-here@v1", cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"hf://lab/nothing-here: no model repository"):
        resolve_package("hf://lab/nothing-here", cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"@v9: the repository exists .* but has no revision 'v9'"):
        resolve_package("hf://lab/mer-smic@v9", cache_dir=tmp_path)
    with pytest.raises(InputError, match="has no revision"):
        resolve_package("hf://lab/mer-smic@" + "0" * 40, cache_dir=tmp_path)


def test_private_repo_needs_a_token(hub, released, tmp_path, monkeypatch):
    from export.push import push_package

    push_package(released["a"], "lab/private-model", revision="v1", private=True)
    assert resolve_package("hf://lab/private-model@v1", cache_dir=tmp_path / "a").is_dir()
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match="private/gated"):
        resolve_package("hf://lab/private-model@v1", cache_dir=tmp_path / "b")
    with pytest.raises(InputError, match="HF_TOKEN"):
        push_package(released["a"], "lab/other-model")


def test_repo_without_package_is_not_served(hub, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("lab/not-a-package")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    api.upload_folder(repo_id="lab/not-a-package", folder_path=tmp_path / "src")
    with pytest.raises(InputError, match=r"holds no model package \(model.onnx missing\)"):
        resolve_package("hf://lab/not-a-package", cache_dir=tmp_path / "cache")
    api.create_repo("lab/empty")  # only the initial .gitattributes: no package file at all
    with pytest.raises(InputError, match=r"holds no model package \(config.json and model.onnx missing\)"):
        resolve_package("hf://lab/empty@main", cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------------------------------
# Tags are releases


def test_reused_tag_is_refused_unless_forced(hub, tmp_path):
    from export.push import push_package

    a = make_package(tmp_path / "a", tag="r1", seed=5)
    first = push_package(a, "lab/tags", revision="r1")
    again = push_package(a, "lab/tags", revision="r1")  # the same package again: a no-op, not an error
    assert again["commit"] == first["commit"] and not again["created_commit"]
    b = make_package(tmp_path / "b", tag="r1", seed=6)
    heads = hub.refs("lab/tags")
    with pytest.raises(InputError, match=r"tag 'r1' already exists .* --force"):
        push_package(b, "lab/tags", revision="r1")
    assert hub.refs("lab/tags") == heads  # refused before anything was committed
    moved = push_package(b, "lab/tags", revision="r1", force=True)
    assert moved["commit"] != first["commit"]
    assert hub.refs("lab/tags")["tags"]["r1"] == moved["commit"]
    path = resolve_package("hf://lab/tags@r1", cache_dir=tmp_path / "cache")
    assert_same_package(path, b)


def test_push_rejects_what_is_not_a_package(hub, tmp_path):
    from export.push import push_package

    pkg = make_package(tmp_path / "pkg")
    (pkg / "README.md").unlink()
    with pytest.raises(InputError, match="README.md missing"):
        push_package(pkg, "lab/x")
    pkg = make_package(tmp_path / "pkg")
    with pytest.raises(InputError, match="not a valid repository id"):
        push_package(pkg, "lab/x/y")
    with pytest.raises(InputError, match="not a usable tag name"):
        push_package(pkg, "lab/x", revision="main")
    (pkg / "README.md").write_text("---\ntags: onnx\nmodel-index: {}\n---\n# bad\n")
    with pytest.raises(InputError, match="metadata"):  # refused by the Hub's validate-yaml
        push_package(pkg, "lab/x")
    (pkg / "README.md").write_text("---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n---\n# bad\n")
    n = len(hub.requests)
    with pytest.raises(InputError, match="metadata block of the model card is invalid"):
        push_package(pkg, "lab/x")  # refused locally by huggingface_hub's own card parser
    (pkg / "README.md").write_text("# a card without metadata\n")
    with pytest.raises(InputError, match="no YAML metadata block"):
        push_package(pkg, "lab/x")
    assert len(hub.requests) == n


def test_push_without_hf_xet(hub, tmp_path, monkeypatch):
    """The client's legacy single-commit path (no hf_xet installed) works against the same server."""
    from huggingface_hub import constants

    from export.push import push_package

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    pkg = make_package(tmp_path / "pkg", tag="nx", seed=4, int8=True)
    result = push_package(pkg, "lab/no-xet", revision="v1")
    assert set(hub.files_at("lab/no-xet", "v1")) == {".gitattributes", *PUSHED, "model.int8.onnx"}
    assert_same_package(resolve_package(result["ref"], cache_dir=tmp_path / "c"), pkg)


# --------------------------------------------------------------------------------------------------------------------
# The command line


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "export.push", *map(str, args)], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60)


def test_cli_push(hub, tmp_path):
    pkg = make_package(tmp_path / "pkg", tag="c1", seed=9)
    out = _cli(pkg, "--repo", "lab/cli-model", "--revision", "c1")
    assert out.returncode == 0, out.stderr
    commit = hub.refs("lab/cli-model")["tags"]["c1"]
    assert f"(commit {commit})" in out.stdout and "use it as: hf://lab/cli-model@c1" in out.stdout
    assert "notes.txt" not in hub.files_at("lab/cli-model", "c1")
    assert_same_package(resolve_package("hf://lab/cli-model@c1", cache_dir=tmp_path / "c"), pkg)

    (pkg / "config.json").write_text('{"changed": true}')
    out = _cli(pkg, "--repo", "lab/cli-model", "--revision", "c1")
    assert out.returncode == 2 and out.stderr.startswith("error: tag 'c1' already exists")
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr

    out = _cli(tmp_path / "missing", "--repo", "lab/cli-model")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1

    out = _cli(pkg)  # --repo missing
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("error: the following arguments are required: --repo")

    out = _cli("--help")
    assert out.returncode == 0 and "--revision TAG" in out.stdout and "--force" in out.stdout


# --------------------------------------------------------------------------------------------------------------------
# The model card, checked by huggingface_hub's own code, offline


def test_model_card_metadata_offline(hub, released, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard, constants
    from huggingface_hub.repocard_data import EvalResult

    downloaded = resolve_package("hf://lab/mer-smic@v2", cache_dir=tmp_path)
    n = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    card = ModelCard.load(downloaded / "README.md")  # ignore_metadata_errors=False: a bad model-index raises
    data = card.data
    assert data.pipeline_tag == "video-classification"
    assert {"onnx", "micro-expression"} <= set(data.tags)
    assert data.library_name == "onnx" and data.license == "mit"
    assert data.model_name == "decalcomanie-smic-v2"
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {"uf1", "uar", "war"}
    assert all(isinstance(r, EvalResult) for r in results.values())
    assert results["uf1"].metric_value == pytest.approx(0.744) and results["uf1"].metric_name == "UF1"
    assert results["war"].task_type == "video-classification" and results["war"].dataset_type == "smic-hs"
    # Round trip through the library's own serialiser gives the same model-index back.
    again = ModelCard(card.content)
    assert again.data.to_dict()["model-index"] == data.to_dict()["model-index"]
    with pytest.raises(ValueError):
        ModelCard("---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n---\n")
    assert len(hub.requests) == n
