#!/usr/bin/env python
"""A GCS-like static server for tests and demos: serves DIR/BUCKET/OBJECT as /BUCKET/OBJECT on 127.0.0.1.

Speaks what zoo's URL source relies on (HEAD/GET, Content-Length, ETag = quoted hex md5,
x-goog-hash crc32c/md5, x-goog-generation, Range -> 206/416, If-Match -> 412) and can misbehave
on purpose: drop the connection after N body bytes, corrupt one byte, answer 503 first, throttle,
answer 412 to every conditional request (as if the object changed each time), send garbled
x-goog-hash values.
Faults can be changed at runtime (attribute writes in-process, or POST /_faults with JSON);
GET /_stats returns the request log and the body bytes served per object.

    python scripts/gcs_server.py --root DIR --port 0 --drop-after 4096 --drop-times 2
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import google_crc32c

HOST = "127.0.0.1"
_SEND_CHUNK = 64 * 1024


@dataclass
class Faults:
    """Misbehaviour switches; counters (drop_times, fail_first) count down as faults fire."""

    drop_after: int | None = None  # body bytes sent before the connection is cut
    drop_times: int = 0  # how many GET responses are cut
    corrupt_offset: int | None = None  # object offset whose byte is flipped in every response
    fail_first: int = 0  # how many requests get 503 before the server behaves
    throttle: int | None = None  # body bytes per second
    omit_md5: bool = False  # x-goog-hash without md5, like composite objects
    ignore_range: bool = False  # answer 200 with the whole object to Range requests
    fail_if_match: bool = False  # answer 412 to every request with If-Match, forever
    garble_hash: bool = False  # x-goog-hash values that are no base64 digests


@dataclass(frozen=True)
class _Object:
    path: Path
    size: int
    etag: str
    md5_b64: str
    crc32c_b64: str
    generation: str


class GCSServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, root: Path, port: int = 0, faults: Faults | None = None) -> None:
        self.root = Path(root).resolve()
        self.faults = faults or Faults()
        self._lock = threading.Lock()
        self._objects: dict[tuple[Path, int, int], _Object] = {}
        self.requests: list[dict[str, Any]] = []
        self.bytes_served: dict[str, int] = {}
        self._httpd = ThreadingHTTPServer((HOST, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.gcs = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, object_path: str) -> str:
        """URL of `BUCKET/OBJECT` (relative to root)."""
        return f"{self.base_url}/{object_path.lstrip('/')}"

    def start(self) -> GCSServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="gcs-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI); `start` serves in a background thread."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> GCSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": [dict(r) for r in self.requests], "bytes_served": dict(self.bytes_served)}

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_served.clear()

    def set_faults(self, **changes: Any) -> None:
        with self._lock:
            self.faults = dataclasses.replace(self.faults, **changes)

    # --- used by the handler ---

    def lookup(self, url_path: str) -> _Object | None:
        path = (self.root / unquote(url_path).lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._objects:
                return self._objects[key]
        data = path.read_bytes()
        crc = google_crc32c.Checksum(data).digest()
        md5 = hashlib.md5(data).digest()
        obj = _Object(
            path,
            len(data),
            f'"{md5.hex()}"',
            base64.b64encode(md5).decode(),
            base64.b64encode(crc).decode(),
            str(st.st_mtime_ns // 1000),
        )
        with self._lock:
            self._objects[key] = obj
        return obj

    def take(self, counter: str) -> bool:
        """Consume one firing of a counted fault."""
        with self._lock:
            left = getattr(self.faults, counter)
            if left > 0:
                setattr(self.faults, counter, left - 1)
                return True
            return False

    def log(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(record)

    def count(self, path: str, n: int) -> None:
        with self._lock:
            self.bytes_served[path] = self.bytes_served.get(path, 0) + n


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """`bytes=A-B`, `bytes=A-` or `bytes=-N` -> (start, end inclusive); None to ignore; 'bad' for 416."""
    if not value.startswith("bytes=") or "," in value:
        return None
    first, _, last = value[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(size - n, 0), size - 1) if n > 0 and size else "bad"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "zoo-gcs-test"

    @property
    def gcs(self) -> GCSServer:
        return self.server.gcs  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read /_stats instead
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/_stats":
            self._json(200, self.gcs.stats())
        else:
            self._serve(head=False)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/_faults":
            self._json(404, {"error": "not found"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            self.gcs.set_faults(**json.loads(body or b"{}"))
        except (TypeError, ValueError) as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, dataclasses.asdict(self.gcs.faults))

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, *, head: bool) -> None:
        path = urlsplit(self.path).path
        record: dict[str, Any] = {
            "method": self.command,
            "path": path,
            "range": self.headers.get("Range"),
            "if_match": self.headers.get("If-Match"),
            "status": None,
        }
        self.gcs.log(record)
        if self.gcs.take("fail_first"):
            record["status"] = 503
            self._empty(503, Retry_After="0")
            return
        obj = self.gcs.lookup(path)
        if obj is None:
            record["status"] = 404
            self._empty(404)
            return
        if_match = self.headers.get("If-Match")
        if if_match is not None and (self.gcs.faults.fail_if_match or if_match.strip() not in ("*", obj.etag)):
            record["status"] = 412
            self._empty(412)
            return
        faults = self.gcs.faults
        start, end, status = 0, obj.size - 1, 200
        wanted = self.headers.get("Range")
        if wanted and not faults.ignore_range:
            span = _parse_range(wanted, obj.size)
            if span == "bad":
                record["status"] = 416
                self._empty(416, Content_Range=f"bytes */{obj.size}")
                return
            if isinstance(span, tuple):
                (start, end), status = span, 206
        record["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", obj.etag)
        self.send_header("x-goog-generation", obj.generation)
        garble = "../not*base64" if faults.garble_hash else ""
        self.send_header("x-goog-hash", f"crc32c={garble or obj.crc32c_b64}")
        if not faults.omit_md5:
            self.send_header("x-goog-hash", f"md5={garble or obj.md5_b64}")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{obj.size}")
        self.end_headers()
        if not head:
            self._send_body(obj, path, start, end, faults)

    def _send_body(self, obj: _Object, path: str, start: int, end: int, faults: Faults) -> None:
        limit = end - start + 1
        if faults.drop_after is not None and faults.drop_after < limit and self.gcs.take("drop_times"):
            limit = faults.drop_after
            self.close_connection = True
        chunk = _SEND_CHUNK if not faults.throttle else max(1, min(_SEND_CHUNK, faults.throttle // 20))
        sent = 0
        try:
            with open(obj.path, "rb") as fh:
                fh.seek(start)
                while sent < limit:
                    block = bytearray(fh.read(min(chunk, limit - sent)))
                    if not block:
                        break
                    at = (faults.corrupt_offset or 0) - start - sent
                    if faults.corrupt_offset is not None and 0 <= at < len(block):
                        block[at] ^= 0xFF
                    self.gcs.count(path, len(block))  # before the write: stats never lag what a client holds
                    self.wfile.write(block)
                    sent += len(block)
                    if faults.throttle:
                        time.sleep(len(block) / faults.throttle)
            if self.close_connection:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="directory holding BUCKET/OBJECT files")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--drop-after", type=int, help="cut the connection after N body bytes")
    parser.add_argument("--drop-times", type=int, default=1, help="... for the first K GET responses")
    parser.add_argument("--corrupt-offset", type=int, help="flip the byte at this object offset")
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first K requests")
    parser.add_argument("--throttle", type=int, help="body bytes per second")
    parser.add_argument("--omit-md5", action="store_true", help="x-goog-hash without md5 (composite objects)")
    parser.add_argument("--ignore-range", action="store_true", help="answer Range requests with 200")
    parser.add_argument("--fail-if-match", action="store_true", help="answer 412 to every If-Match request")
    parser.add_argument("--garble-hash", action="store_true", help="send x-goog-hash values that are no digests")
    args = parser.parse_args(argv)
    faults = Faults(
        drop_after=args.drop_after,
        drop_times=args.drop_times if args.drop_after else 0,
        corrupt_offset=args.corrupt_offset,
        fail_first=args.fail_first,
        throttle=args.throttle,
        omit_md5=args.omit_md5,
        ignore_range=args.ignore_range,
        fail_if_match=args.fail_if_match,
        garble_hash=args.garble_hash,
    )
    server = GCSServer(args.root, args.port, faults)
    print(server.port, flush=True)
    print(f"serving {server.root} at {server.base_url}/BUCKET/OBJECT", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
