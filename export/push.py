"""Publish a model package folder to the Hugging Face Hub, optionally under a tag.

    python -m export.push PKG --repo OWNER/NAME [--revision TAG] [--private] [--force] [--message TEXT]

Only the package files (``model.onnx``, ``model.fp16.onnx``, ``model.int8.onnx``, ``config.json``, ``README.md``)
are uploaded (a learned spotter package, ``python -m training.spot_learn``'s ``OUT/spotter/``: ``config.json`` and
``README.md``), in one commit on ``main``; anything else in the folder stays local. With ``--revision TAG`` the new
commit is tagged, so the runtime can pin it as ``hf://OWNER/NAME@TAG``. A tag is a release: one that already
exists on other content is refused unless ``--force`` moves it. Pushing the very same package again is a no-op.

The token comes from the ``token`` argument, else from the client's usual sources (``HF_TOKEN``, ``hf auth login``);
``HF_ENDPOINT`` selects another Hub (a private one, or the local one the tests run).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from inference.errors import InputError, cli
from inference.hub import COMMIT, check_package, hub_endpoint, valid_repo_id, valid_revision
from inference.learned_spotter import SPOTTER_FILES, is_spotter_package, load_spotter
from inference.package import CARD_FILE, HUB_FILES, PACKAGE_FILES, missing_files


def package_files(pkg_dir: Path) -> list[str]:
    """The package files present in ``pkg_dir``; ``InputError`` if it is not a complete package. What the runtime
    needs is checked by the runtime's own check; a package for the Hub must carry its model card as well. A learned
    spotter package (:mod:`inference.learned_spotter`) is its ``config.json`` and its card."""
    if pkg_dir.is_dir() and is_spotter_package(pkg_dir):
        if missing_files(pkg_dir, SPOTTER_FILES):
            raise InputError(f"{pkg_dir}: a learned spotter package for the Hub needs {' and '.join(SPOTTER_FILES)}; "
                             f"give the folder python -m training.spot_learn wrote (OUT/spotter/)")
        load_spotter(pkg_dir)  # one the runtime reads: a damaged file is refused here, not by its users
        return list(SPOTTER_FILES)
    check_package(pkg_dir)
    if missing_files(pkg_dir, HUB_FILES):
        raise InputError(f"{pkg_dir}: not a model package for the Hub, {CARD_FILE} missing (the model card). "
                         f"Give the folder `python -m export` wrote ({', '.join(HUB_FILES)}).")
    return [name for name in PACKAGE_FILES if (pkg_dir / name).is_file()]


def check_card(readme: Path) -> None:
    """The model card must carry Hub metadata that huggingface_hub itself parses (checked locally, no network)."""
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(readme)  # ignore_metadata_errors=False: a malformed model-index raises
    except Exception as e:  # yaml errors, ValueError from the card data classes
        raise InputError(f"{readme}: the metadata block of the model card is invalid ({e}). "
                         "Fix the YAML between the '---' lines at its top.") from None
    if not card.data.to_dict():
        raise InputError(f"{readme}: the model card has no YAML metadata block (pipeline_tag, tags, model-index) "
                         "at its top; the Hub needs one. Re-export the package.")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _same_files(api, repo_id: str, revision: str, pkg_dir: Path, files: list[str]) -> bool:
    """Whether the package files at ``revision`` are exactly the local ones (same names, same bytes)."""
    from huggingface_hub import RepoFile

    remote = {f.path: f for f in api.list_repo_tree(repo_id, revision=revision, recursive=True)
              if isinstance(f, RepoFile) and f.path in PACKAGE_FILES}
    if set(remote) != set(files):
        return False
    for name in files:
        data = (pkg_dir / name).read_bytes()
        entry = remote[name]
        if entry.lfs is not None:
            if entry.lfs.sha256 != hashlib.sha256(data).hexdigest():
                return False
        elif entry.blob_id != _git_blob_sha1(data):
            return False
    return True


def push_package(pkg_dir: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
                 token: str | None = None, commit_message: str | None = None, force: bool = False) -> dict:
    """Upload the package in ``pkg_dir`` to the model repo ``repo_id`` (created if needed), tag it ``revision``.

    Returns ``{"repo_id", "commit", "revision", "url", "ref", "files", "created_commit"}``: ``commit`` is the
    40-hex commit holding the package, ``revision`` the tag (or the commit when no tag was asked), ``ref`` the
    ``hf://OWNER/NAME@REV`` the runtime takes. ``private`` applies when the repo is created; an existing repo
    keeps its visibility.
    """
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalTokenNotFoundError

    pkg_dir = Path(pkg_dir).expanduser()
    files = package_files(pkg_dir)
    if not valid_repo_id(repo_id):
        raise InputError(f"{repo_id!r} is not a valid repository id; write OWNER/NAME "
                         "(letters, digits, '-', '_', '.')")
    if revision is not None and (not valid_revision(revision) or COMMIT.match(revision) or revision == "main"):
        raise InputError(f"{revision!r} is not a usable tag name; use something like v1.0 or smic-loso-2024 "
                         "(not 'main', not a 40-hex commit)")

    check_card(pkg_dir / CARD_FILE)
    api = HfApi(endpoint=hub_endpoint(), token=token)
    where = api.endpoint
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        existing = None
        if revision is not None:
            tags = {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}
            existing = tags.get(revision)
            if existing is not None and not force:
                if _same_files(api, repo_id, existing, pkg_dir, files):
                    return _result(where, repo_id, existing, revision, files, created=False)
                raise InputError(f"tag {revision!r} already exists on {repo_id} (commit {existing}) with other "
                                 "content. Choose a new tag, or pass --force (force=True) to move it.")
        before = api.repo_info(repo_id, revision="main").sha
        info = api.upload_folder(
            repo_id=repo_id, repo_type="model", folder_path=str(pkg_dir), allow_patterns=files,
            commit_message=commit_message or f"Upload model package{f' {revision}' if revision else ''}",
        )
        commit = info.oid
        if revision is not None and existing != commit:
            if existing is not None:
                api.delete_tag(repo_id, tag=revision)
            api.create_tag(repo_id, tag=revision, revision=commit,
                           tag_message=commit_message or f"model package {revision}")
        return _result(where, repo_id, commit, revision, files, created=commit != before)
    except InputError:
        raise
    except LocalTokenNotFoundError:
        raise InputError("no Hugging Face token found: set HF_TOKEN or run `hf auth login`") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        message = (e.server_message or "").strip() or str(e).splitlines()[0]
        if status in (401, 403):
            raise InputError(f"{where} refused to let you write to {repo_id} ({message}). Set HF_TOKEN to a token "
                             "with write access (or run `hf auth login`), and check OWNER is you or an "
                             "organisation you can write to.") from None
        raise InputError(f"{where} refused the push to {repo_id} (HTTP {status}: {message})") from None
    except (HFValidationError, ValueError) as e:  # e.g. README.md metadata the Hub rejects
        raise InputError(f"{repo_id}: {e}".strip()) from None
    except httpx2.HTTPError as e:
        raise InputError(f"cannot reach {where} ({type(e).__name__}: {e}); check the network and HF_ENDPOINT") \
            from None


def _result(endpoint: str, repo_id: str, commit: str, revision: str | None, files: list[str], created: bool) -> dict:
    rev = revision or commit
    return {"repo_id": repo_id, "commit": commit, "revision": rev, "url": f"{endpoint}/{repo_id}/tree/{rev}",
            "ref": f"hf://{repo_id}@{rev}", "files": files, "created_commit": created}


def _usage_error(parser: argparse.ArgumentParser, message: str):
    print(f"error: {message} (see {parser.prog} --help)", file=sys.stderr)
    sys.exit(2)


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.push",
        description="Publish a model package folder (model.onnx, config.json, README.md, optional "
                    "model.fp16.onnx / model.int8.onnx) to a Hugging Face Hub model repo, in one commit on main, "
                    "optionally tagged. Other files in the folder are not uploaded. The token comes from HF_TOKEN "
                    "or `hf auth login`; HF_ENDPOINT selects another Hub.",
        epilog="Then serve it pinned: python -m demo --model hf://OWNER/NAME@TAG")
    parser.add_argument("package", metavar="PKG", type=Path, help="the package folder `python -m export` wrote")
    parser.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the model repository (created if needed)")
    parser.add_argument("--revision", metavar="TAG",
                        help="tag the new commit (a release name such as v1.0) so it can be pinned as "
                             "hf://OWNER/NAME@TAG")
    parser.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    parser.add_argument("--force", action="store_true",
                        help="move TAG if it already exists on other content (default: refuse)")
    parser.add_argument("--message", metavar="TEXT", help="the commit message")
    parser.error = lambda message: _usage_error(parser, message)  # one "error: …" line, exit 2
    args = parser.parse_args(argv)
    result = push_package(args.package, args.repo, revision=args.revision, private=args.private,
                          commit_message=args.message, force=args.force)
    state = "pushed" if result["created_commit"] else "already up to date:"
    print(f"{state} {', '.join(result['files'])} → {result['url']} (commit {result['commit']})")
    print(f"use it as: {result['ref']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
