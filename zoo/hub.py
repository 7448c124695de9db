"""`zoo push`: upload a verified model directory to a Hugging Face Hub repo.

The directory is verified first; one that does not pass is refused unless forced, and then its
card says the upload is unverified. What goes up is a staging copy (hard links) whose card is
rendered for the target repo (usage snippets name it, the verification table shows this run)
and whose manifest is re-sealed for that card, so `zoo verify` passes on a downloaded copy.
The upload itself is huggingface_hub's (`create_repo` + `upload_folder`, HF_ENDPOINT and
HF_TOKEN or a stored login); a push of unchanged files creates no commit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import card, constants, manifest
from ._version import __version__
from .checks.report import Report
from .checks.runner import verify_dir
from .errors import InputError, UnverifiedModelError, UploadError
from .families import family, find_format
from .registry import Entry

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
NOT_UPLOADED = (manifest.VERIFY_REPORT_FILENAME,)  # this machine's verify record, rewritten by every verify


@dataclass(frozen=True)
class PushResult:
    repo: str
    revision: str
    url: str
    commit: str
    changed: bool  # False: the repo already held these files, no commit was made
    verified: bool
    checks: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def push(
    model_dir: Path,
    entry: Entry | None,
    repo: str,
    *,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
    force: bool = False,
) -> PushResult:
    if not REPO_ID_RE.fullmatch(repo) or ".." in repo:
        raise InputError(f"--repo {repo!r}: expected ORG/NAME (letters, digits, '.', '_', '-')")
    if revision is not None and (not BRANCH_RE.fullmatch(revision) or ".." in revision):
        raise InputError(f"--revision {revision!r}: not a valid branch name")
    report = verify_dir(model_dir, entry=entry)
    failed = [c for c in report.checks if c.ran and not c.ok]
    if not report.ok and not force:
        names = ", ".join(f"{c.name} ({c.value})" for c in failed) or "no check could run"
        raise UnverifiedModelError(
            f"refusing to push {model_dir.name}: verify did not pass: {names}; "
            "`zoo verify` shows why, `--force` pushes it marked unverified",
            [c.name for c in failed],
        )
    unverified = None if report.ok else ", ".join(c.name for c in failed) or "no check could run"
    staging = _staging(model_dir, entry, repo, report, unverified)
    try:
        return _upload(
            staging,
            repo,
            revision or "main",
            private,
            message or f"Upload {model_dir.name} with zoo {__version__}",
            report,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging(model_dir: Path, entry: Entry | None, repo: str, report: Report, unverified: str | None) -> Path:
    """A hard-linked copy with the card rendered for `repo` and the manifest re-sealed for it."""
    data = manifest.read(model_dir)
    staging = Path(tempfile.mkdtemp(prefix=".zoo-push-", dir=_scratch(model_dir)))
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir)
        if rel.as_posix() in NOT_UPLOADED:
            continue
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, staging / rel)
        except OSError:
            shutil.copy2(path, staging / rel)
    fam = family(data["family"])
    task = entry.task if entry is not None else find_format(data["format"])[1].task
    (staging / constants.MODEL_CARD_FILENAME).unlink(missing_ok=True)
    card.write(
        staging,
        card.CardFacts(
            family=fam,
            task=task,
            title=entry.id if entry else _title(model_dir, data),
            entry=entry,
            source=data.get("source"),
            checks=[c.to_dict() for c in report.checks],
            notes=data.get("notes", []),
            license=card.source_license([model_dir]),
            repo=repo,
            unverified=unverified,
            has_tokenizer=(model_dir / "vocab.txt").is_file() or bool(fam.remote_code and fam.remote_code.tokenizers),
        ),
    )
    manifest.rehash(staging, data, [constants.MODEL_CARD_FILENAME])
    return staging


def _title(model_dir: Path, data: dict[str, Any]) -> str:
    source = data.get("source") or {}
    return str(source.get("name") or model_dir.name)


def _scratch(model_dir: Path) -> Path:
    """Beside the model when writable (hard links need one file system), else the zoo cache."""
    if os.access(model_dir.parent, os.W_OK):
        return model_dir.parent
    scratch = constants.zoo_home() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def _upload(staging: Path, repo: str, revision: str, private: bool, message: str, report: Report) -> PushResult:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    endpoint = constants.hf_endpoint()
    api = HfApi(endpoint=endpoint)
    try:
        try:
            before: str | None = api.repo_info(repo, revision=revision).sha
        except (RepositoryNotFoundError, RevisionNotFoundError):
            before = None
        api.create_repo(repo, private=private, exist_ok=True)
        if revision != "main":
            api.create_branch(repo, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=staging, repo_id=repo, revision=revision, commit_message=message)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = " (no valid token: set HF_TOKEN or run `hf auth login`)" if status in (401, 403) else ""
        raise UploadError(
            f"{endpoint} refused the upload to {repo}@{revision}: HTTP {status}{hint}: {str(exc).splitlines()[0]}",
            status=status,
        ) from None
    except (OSError, httpx2.TransportError) as exc:
        raise UploadError(f"the upload to {endpoint}/{repo} failed: {type(exc).__name__}: {exc}") from None
    except RuntimeError as exc:  # huggingface_hub wraps a failed LFS upload ("Error while uploading ...")
        cause = exc.__cause__ or exc
        raise UploadError(
            f"the upload to {endpoint}/{repo} failed: {exc} ({type(cause).__name__}: {cause}); "
            "nothing was committed, run the push again"
        ) from None
    url = f"{endpoint}/{repo}" + ("" if revision == "main" else f"/tree/{revision}")
    return PushResult(
        repo=repo,
        revision=revision,
        url=url,
        commit=str(info.oid),
        changed=info.oid != before,
        verified=report.ok,
        checks=[c.to_dict() for c in report.checks],
    )
