"""A Hugging Face Hub-compatible HTTP server over a local directory of repos (tests, demos).

Layout served (plain files, no git needed):
    ROOT/<org>/<name>/...                       branch "main"
    ROOT/<org>/<name>/.revisions/<branch>/...   further branches, each a full tree

Every branch gets one commit whose sha is derived from its tree, so pins are reproducible.
Files above `lfs_threshold` bytes, or with a weights suffix, are served as LFS (ETag and
tree oid sha256); other files as git blobs (git-blob sha1). Only what huggingface_hub 2.x
needs is implemented (see shared/spec/sources.md); xet is never advertised. The index of what
each branch holds, and the JSON bodies of model info and tree listings, are in scripts/hub_repos.py.

Uploads (scripts/hub_uploads.py): repo creation, preupload, the LFS batch API and NDJSON
commits, as huggingface_hub pushes with HF_HUB_DISABLE_XET=1. Writes need an Authorization
header (`--token` pins the one accepted); a pushed repo is served like any other.

Test hooks: `HubServer.tamper()` serves one flipped byte while advertising the true oid and
size; `HubServer.hostile()` makes the read API lie (another commit sha in model info, extra
tree entries such as `../` paths); `HubServer.stats()` (also `GET /_stats`) counts requests and
per-file downloads.

    python scripts/hub_server.py ROOT [--port 0] [--lfs-threshold 1024] [--token T] [--tamper org/name:path[@offset]]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hub_repos import NotFound, RepoEntry, RepoIndex, model_info, tree_listing
from hub_uploads import ConnectionDropped, HubError, UploadStore, read_ndjson

HOST = "127.0.0.1"  # never reachable from elsewhere
CHUNK = 1 << 20


# --- HTTP -----------------------------------------------------------------------


class HubServer:
    """The Hub over `root`, on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(self, root: Path | str, port: int = 0, lfs_threshold: int = 1024, token: str | None = None) -> None:
        self.index = RepoIndex(Path(root), lfs_threshold)
        self.uploads = UploadStore(Path(root), self.index.tree_lock, self.index.is_lfs)
        self.token = token  # None: any bearer token may write
        self._tampered: dict[tuple[str, str], int] = {}
        self._hostile: dict[str, dict[str, Any]] = {}  # repo -> {"commit": sha, "tree_extra": [items]}
        self._counts: collections.Counter[str] = collections.Counter()
        self._downloads: collections.Counter[str] = collections.Counter()
        self._log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((HOST, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # test hooks ------------------------------------------------------------------
    def tamper(self, repo: str, path: str, offset: int = 0) -> None:
        """Serve `path` with the byte at `offset` flipped, still advertising the true oid and size."""
        with self._lock:
            self._tampered[(repo, path)] = offset

    def drop_lfs_uploads(self, count: int) -> None:
        """Hang up the next `count` LFS uploads half-way (a connection dropped during the PUT)."""
        with self.uploads._lock:
            self.uploads.drop_puts = count

    def clear_tampering(self) -> None:
        with self._lock:
            self._tampered.clear()
            self._hostile.clear()

    def hostile(self, repo: str, *, commit: str | None = None, tree_extra: list[dict[str, Any]] | None = None) -> None:
        """Read-side lies for `repo`: model info names `commit` (any string), the tree lists `tree_extra` too."""
        with self._lock:
            self._hostile[repo] = {"commit": commit, "tree_extra": list(tree_extra or [])}

    def _lie_info(self, repo: str, info: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            lie = self._hostile.get(repo)
        return {**info, "sha": lie["commit"]} if lie and lie["commit"] is not None else info

    def _lie_tree(self, repo: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            lie = self._hostile.get(repo)
        return items + lie["tree_extra"] if lie else items

    def commit(self, repo: str, branch: str = "main") -> str:
        return self.index.resolve(repo, branch).commit

    def stats(self) -> dict[str, Any]:
        """Requests by kind ("GET resolve", "HEAD resolve", "GET model_info", ...), GETs per "repo/path", the log."""
        with self._lock:
            return {
                "requests": sum(self._counts.values()),
                "counts": dict(self._counts),
                "downloads": dict(self._downloads),
                "log": list(self._log),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._downloads.clear()
            self._log.clear()

    def _record(self, method: str, kind: str, path: str, status: int, download: str | None) -> None:
        with self._lock:
            self._counts[f"{method} {kind}"] += 1
            if download:
                self._downloads[download] += 1
            self._log.append({"method": method, "kind": kind, "path": path, "status": status, "time": time.time()})

    def _tamper_offset(self, repo: str, path: str) -> int | None:
        with self._lock:
            return self._tampered.get((repo, path))


def _handler_for(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        hub = server

    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "zoo-hub-server/1"
    hub: HubServer
    _kind: str | None = None  # route of the request being answered; None: not counted (/_stats)
    _download: str | None = None  # "org/name/path" when the request is a file resolve

    def send_response(self, code: int, message: str | None = None) -> None:
        """Record the request as its status line goes out: stats never lag a response the client has seen."""
        if self._kind is not None:
            download = self._download if self.command == "GET" and code in (200, 206) else None
            self.hub._record(self.command, self._kind, self.path, code, download)
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:  # requests are in stats(), not on stderr
        return

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        self._write("POST")

    def do_PUT(self) -> None:
        self._write("PUT")

    # --- writes (scripts/hub_uploads.py) ---------------------------------------------------------

    def _write(self, method: str) -> None:
        url = urlsplit(self.path)
        segs = [unquote(s) for s in url.path.split("/")[1:]]
        self._kind, self._download = f"upload {segs[0] if segs else ''}".strip(), None
        try:
            if method == "PUT" and len(segs) == 2 and segs[0] == "_lfs_upload":  # one-time ticket, no header
                self.close_connection = True  # an unread or short body must not be parsed as a request
                self.hub.uploads.lfs_put(segs[1], self.rfile, _int_header(self.headers.get("Content-Length")))
                self._send_json({}, head=False)
                return
            body = self._read_body()  # read first: an error answer then leaves the connection clean
            self._authorize()
            self._send_json(self._post(segs, body), head=False)
        except HubError as exc:
            self._send_error(exc.status, exc.code, str(exc), None, head=False, **exc.body)
        except NotFound as exc:
            self._send_error(404, exc.code, str(exc), exc.commit, head=False)
        except ConnectionDropped:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # hang up without an answer
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away: nothing it sent was stored half-way

    def _authorize(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or (self.hub.token and token.strip() != self.hub.token):
            raise HubError(
                401, "Invalid credentials in Authorization header: a write needs a valid token", "Unauthorized"
            )

    def _read_body(self) -> bytes:
        length = _int_header(self.headers.get("Content-Length"))
        if length is None:
            self.close_connection = True
            raise HubError(411, "a Content-Length is required")
        data = self.rfile.read(length)
        if len(data) != length:
            raise HubError(400, "the request body was cut short")
        return data

    def _post(self, segs: list[str], body: bytes) -> Any:
        uploads, index = self.hub.uploads, self.hub.index
        if segs == ["api", "repos", "create"]:
            return uploads.create_repo(_json_body(body), self.hub.url)
        if segs == ["api", "validate-yaml"]:
            return {"errors": [], "warnings": []}
        if len(segs) == 6 and segs[:2] == ["api", "models"] and segs[4] in ("preupload", "commit", "branch"):
            repo, action, rev = f"{segs[2]}/{segs[3]}", segs[4], segs[5]
            if action == "branch":
                uploads.create_branch(index.repo_dir(repo), rev, index.repo_dir(repo))
                return {}
            tree = index.branch_dir(repo, rev)
            if action == "preupload":
                return uploads.preupload(_json_body(body).get("files") or [], index.resolve(repo, rev).files)
            uploads.commit(tree, read_ndjson(body), lambda: index.resolve(repo, rev).commit)
            commit = index.resolve(repo, rev).commit
            return {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"{self.hub.url}/{repo}/commit/{commit}",
                "pullRequestUrl": None,
            }
        if len(segs) == 6 and segs[1].endswith(".git") and segs[2:5] == ["info", "lfs", "objects"]:
            repo = f"{segs[0]}/{segs[1][: -len('.git')]}"
            index.repo_dir(repo)
            if segs[5] == "batch":
                return uploads.lfs_batch(_json_body(body), self.hub.url, repo)
            if segs[5] == "verify":
                obj = _json_body(body)
                if not uploads.has_object(str(obj.get("oid")), int(obj.get("size") or -1)):
                    raise HubError(404, f"LFS object {obj.get('oid')} was not uploaded", "EntryNotFound")
                return {}
        raise HubError(404, f"no route for POST /{'/'.join(segs)}")

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        segs = [unquote(s) for s in url.path.split("/")[1:]]
        if segs == ["_stats"]:  # not counted: reading the stats must not change them
            self._kind = None
            self._send_json(self.hub.stats(), head)
            return
        self._kind, self._download = _route_kind(segs), None
        try:
            if self._kind == "resolve":
                repo, path = f"{segs[0]}/{segs[1]}", "/".join(segs[4:])
                self._download = f"{repo}/{path}"
                self._resolve(repo, segs[3], path, head)
            elif segs[:2] == ["api", "models"] and len(segs) >= 4:
                self._send_json(self._api(f"{segs[2]}/{segs[3]}", segs[4:], query), head)
            else:
                self._send_error(404, None, f"no route for {url.path}", None, head)
        except NotFound as exc:
            self._send_error(404, exc.code, str(exc), exc.commit, head)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away mid-response; the request was recorded when it was answered

    def _api(self, repo: str, rest: list[str], query: dict[str, str]) -> Any:
        truthy = ("1", "true", "True")
        if not rest:
            info = model_info(repo, self.hub.index.resolve(repo, "main"), query.get("blobs") in truthy)
            return self.hub._lie_info(repo, info)
        if rest[0] == "revision" and len(rest) == 2:
            info = model_info(repo, self.hub.index.resolve(repo, rest[1]), query.get("blobs") in truthy)
            return self.hub._lie_info(repo, info)
        if rest[0] == "tree" and len(rest) >= 2:
            rev = self.hub.index.resolve(repo, rest[1])
            listing = tree_listing(
                rev, "/".join(rest[2:]), query.get("recursive") in truthy, query.get("expand") in truthy
            )
            return self.hub._lie_tree(repo, listing)
        if rest == ["refs"]:
            branches = [
                {"name": r.branch, "ref": f"refs/heads/{r.branch}", "targetCommit": r.commit}
                for r in self.hub.index.revisions(repo).values()
            ]
            return {"branches": branches, "tags": [], "converts": []}
        self.hub.index.repo_dir(repo)  # unknown repo wins over unknown route
        raise NotFound("EntryNotFound", f"unsupported API route {'/'.join(rest)}")

    def _resolve(self, repo: str, rev_name: str, path: str, head: bool) -> None:
        rev = self.hub.index.resolve(repo, rev_name)
        entry = rev.files.get(path)
        if entry is None:
            raise NotFound("EntryNotFound", f"{path} does not exist on {rev_name}", rev.commit)
        start, end = 0, entry.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, entry.size)
            if parsed is None:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{entry.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            (start, end), status = parsed, 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(max(0, end - start + 1)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{entry.etag}"')
        self.send_header("X-Repo-Commit", rev.commit)
        if entry.sha256:
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(entry.size))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
        self.end_headers()
        if not head:
            self._send_file(entry, start, end, self.hub._tamper_offset(repo, path))

    def _send_file(self, entry: RepoEntry, start: int, end: int, tamper_at: int | None) -> None:
        with open(entry.local, "rb") as fh:
            fh.seek(start)
            pos = start
            while pos <= end:
                block = bytearray(fh.read(min(CHUNK, end - pos + 1)))
                if not block:
                    break
                if tamper_at is not None and pos <= tamper_at < pos + len(block):
                    block[tamper_at - pos] ^= 0xFF
                self.wfile.write(block)
                pos += len(block)

    def _send_json(self, body: Any, head: bool) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _send_error(
        self, status: int, code: str | None, message: str, commit: str | None, head: bool, **body: Any
    ) -> None:
        data = json.dumps({"error": message, **body}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if not head:
            self.wfile.write(data)


def _route_kind(segs: list[str]) -> str:
    """A short label for stats: resolve, model_info, tree, refs, api, other."""
    if len(segs) >= 5 and segs[2] == "resolve":
        return "resolve"
    if segs[:2] != ["api", "models"] or len(segs) < 4:
        return "other"
    rest = segs[4:]
    if not rest or rest[0] == "revision":
        return "model_info"
    return rest[0] if rest[0] in ("tree", "refs") else "api"


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise HubError(400, "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise HubError(400, "the request body must be a JSON object")
    return data


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` as inclusive (start, end); None when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return (start, end) if start <= end and start < size else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="directory holding <org>/<name>/ repos")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--lfs-threshold", type=int, default=1024, help="files above this many bytes are LFS")
    parser.add_argument("--token", help="the one token that may write (default: any bearer token)")
    parser.add_argument(
        "--tamper",
        action="append",
        default=[],
        metavar="ORG/NAME:PATH[@OFFSET]",
        help="serve PATH with one flipped byte (oid and size unchanged)",
    )
    args = parser.parse_args(argv)
    server = HubServer(args.root, args.port, args.lfs_threshold, args.token)
    for spec in args.tamper:
        target, _, offset = spec.partition("@")
        repo, _, path = target.partition(":")
        server.tamper(repo, path, int(offset or 0))
    print(f"serving {args.root} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
