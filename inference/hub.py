"""Model packages from a local folder or from the Hugging Face Hub (``hf://OWNER/NAME[@REV]``).

A package is a folder holding ``model.onnx`` and ``config.json`` (plus the model card ``README.md`` and optional
``model.fp16.onnx`` / ``model.int8.onnx``). :func:`resolve_package` turns what a user typed into such a folder:

- a local folder is checked and returned as it is;
- ``hf://OWNER/NAME@REV`` (REV: a tag, a branch or a 40-hex commit) is downloaded with
  ``huggingface_hub.snapshot_download`` into the usual Hub cache, package files only, and the cache is reused:
  the returned folder is ``…/snapshots/<commit>``, so :func:`resolved_commit` says exactly which commit is served;
  with ``HF_HUB_OFFLINE=1`` a tag, branch or commit downloaded before is served from the cache without any request;
- ``hf://OWNER/NAME`` (no ``@REV``) follows ``main`` and warns that the model is not pinned, naming the commit
  to pin.

``HF_ENDPOINT`` (a private or local Hub), ``HF_HUB_OFFLINE``, ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_TOKEN`` are
honoured; the first two are read when this is called, not only when ``huggingface_hub`` was first imported.
Whatever goes wrong (unknown repo, unknown revision, no network and nothing cached) is an ``InputError`` that says
what was asked and what to do, never a traceback from ``huggingface_hub``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from .errors import InputError
from .package import PACKAGE_FILES, REQUIRED_FILES, missing_files

SCHEME = "hf://"
REF_FORM = "hf://OWNER/NAME or hf://OWNER/NAME@REV (REV: a tag, a branch or a 40-hex commit)"

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_PART}/{_PART}$")
_REVISION = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._/-]{0,198}[A-Za-z0-9_])?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


class UnpinnedRevisionWarning(UserWarning):
    """A Hub model was asked for without ``@REV``: what is served changes when ``main`` moves."""


def valid_repo_id(repo_id: str) -> bool:
    """``OWNER/NAME`` as the Hub accepts it: letters, digits, ``-`` ``_`` ``.``; no ``--`` or ``..``."""
    return bool(_REPO_ID.match(repo_id)) and "--" not in repo_id and ".." not in repo_id \
        and not repo_id.endswith(".git")


def valid_revision(revision: str) -> bool:
    """A tag or branch name (git ref rules, simplified) or a 40-hex commit."""
    return bool(_REVISION.match(revision)) and ".." not in revision and "//" not in revision \
        and not revision.endswith((".lock", "/"))


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``hf://OWNER/NAME[@REV]`` → ``(OWNER/NAME, REV or None)``; any other form raises ``InputError``."""
    text = str(ref).strip()
    if not text.startswith(SCHEME):
        raise InputError(f"{ref!r} is not a Hub model reference; write {REF_FORM}")
    body = text[len(SCHEME):]
    repo_id, sep, revision = body.partition("@")
    if not valid_repo_id(repo_id):
        raise InputError(f"{ref!r}: {repo_id!r} is not a valid OWNER/NAME (letters, digits, '-', '_', '.'); "
                         f"write {REF_FORM}")
    if sep and not (revision and valid_revision(revision)):
        raise InputError(f"{ref!r}: {revision!r} is not a valid revision after '@'; write {REF_FORM}")
    return repo_id, (revision if sep else None)


def check_package(folder: Path, what: str | None = None, required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    """The folder if it holds a package's ``required`` files (a model package's by default), else ``InputError``
    naming what is missing."""
    what = what or str(folder)
    if not folder.exists():
        raise InputError(f"{what}: no such model package folder. Give a folder holding config.json and model.onnx, "
                         f"or a Hub model as {REF_FORM}.")
    if not folder.is_dir():
        raise InputError(f"{what}: not a folder. A model package is a folder holding config.json and model.onnx.")
    missing = missing_files(folder, required)
    if missing:
        raise InputError(f"{what}: not a model package, {' and '.join(missing)} missing. "
                         "Export one with `python -m export …` or point to the folder it wrote.")
    return folder


def resolved_commit(path: str | Path) -> str:
    """The commit a downloaded package folder (``…/snapshots/<commit>``) holds; ``InputError`` for other folders."""
    path = Path(path)
    if COMMIT.match(path.name) and path.parent.name == "snapshots":
        return path.name
    raise InputError(f"{path}: not a package downloaded from the Hub (its folder is not a snapshots/<commit>), "
                     "so it has no commit")


def _env_true(name: str) -> bool:
    return (os.environ.get(name) or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    from huggingface_hub import constants

    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE") or constants.HF_HUB_OFFLINE


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` (a private or local Hub) as read now, or None for the Hugging Face Hub: the one place it is
    read, for downloads here and for ``python -m export.push``."""
    endpoint = (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/")
    return endpoint or None


def resolve_package(ref: str | Path, cache_dir: str | Path | None = None,
                    required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    """A local package folder, or ``hf://OWNER/NAME[@REV]`` downloaded (package files only) → the package folder.
    ``required``: the files the folder must hold (a model package's by default; a learned spotter package's are
    ``inference.learned_spotter.SPOTTER_FILES``).

    For the Hub, the folder returned is the cache's ``snapshots/<commit>``; see :func:`resolved_commit`.
    """
    if isinstance(ref, Path) or not str(ref).strip().lower().startswith("hf:"):
        return check_package(Path(ref).expanduser(), required=required)
    repo_id, revision = parse_model_ref(str(ref))
    return _download(repo_id, revision, cache_dir, required)


def _download(repo_id: str, revision: str | None, cache_dir: str | Path | None,
              required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    import httpx2
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    asked = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    offline = _offline()
    endpoint = hub_endpoint()
    where = endpoint or "the Hugging Face Hub"
    try:
        path = Path(snapshot_download(
            repo_id, revision=revision or "main", allow_patterns=list(PACKAGE_FILES),
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            local_files_only=offline, endpoint=endpoint,
        ))
    except RevisionNotFoundError:
        raise InputError(f"{asked}: the repository exists on {where} but has no revision {revision or 'main'!r}. "
                         "Check the tag, branch or commit (the repository's 'Files and versions' page lists "
                         "them).") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise InputError(f"{asked}: no model repository {repo_id!r} on {where}, or it is private/gated and "
                         "your token cannot read it. Check OWNER/NAME; for a private model set HF_TOKEN or run "
                         "`hf auth login`.") from None
    except IncompleteSnapshotError:
        raise InputError(f"{asked}: only part of this package is in the local cache and {where} cannot be "
                         "reached to complete it. Connect once (without HF_HUB_OFFLINE) to finish the "
                         "download.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        if offline:
            raise InputError(f"{asked}: not in the local cache and offline mode is on (HF_HUB_OFFLINE). "
                             "Download it once with network access, or unset HF_HUB_OFFLINE.") from None
        raise InputError(f"{asked}: {where} cannot be reached and this package is not in the local cache. "
                         "Check the network (and HF_ENDPOINT), or download it once while online.") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        reason = (e.server_message or "").strip() or f"HTTP {status}"
        raise InputError(f"{asked}: {where} refused the download ({reason}). Check your token (HF_TOKEN) and "
                         "try again later.") from None
    except HFValidationError as e:
        raise InputError(f"{asked}: {e}; write {REF_FORM}") from None
    except (httpx2.HTTPError, OSError) as e:
        raise InputError(f"{asked}: download from {where} failed ({type(e).__name__}: {e}). Check the network "
                         "and the disk space of the Hub cache (HF_HOME), then try again.") from None

    missing = missing_files(path, required)
    if missing:
        raise InputError(f"{asked}: commit {path.name} of {repo_id} holds no model package ({' and '.join(missing)} "
                         "missing). Check the revision, or push a package with `python -m export.push`.")
    if revision is None:
        warnings.warn(
            f"{asked} is not pinned to a revision: it follows 'main', now commit {path.name}. "
            f"To always get this exact model, use hf://{repo_id}@{path.name}",
            UnpinnedRevisionWarning, stacklevel=3)
    return path
