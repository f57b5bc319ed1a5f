"""A local fake of the Google Cloud Storage XML API, for delta-rs and obstore.

Production reaches `gs://` through Rust `object_store`, which speaks the GCS *XML*
API (path style `/{bucket}/{object}`, S3-style listing and multipart upload); the
JSON-API emulators on PyPI cannot take its writes. This fake serves exactly the
requests object_store 0.12 sends, with the GCS semantics that correctness hangs on:
generation preconditions (`x-goog-if-generation-match: 0` is how a Delta commit
becomes put-if-absent), multipart objects that appear only when completed, and the
404/412/416 statuses object_store maps to NotFound/Precondition/AlreadyExists.

State is in memory, in a child process (see `GcsFake`). Point a client at it with
`storage_options(fake.base_url)`; `stats()`, `requests()`, `fail_next()` and
`pause_on()` let a test prove what happened on the wire.

Identities stand in for IAM: `fake.identity_url(name)` is a base URL whose requests act as
`name`, and `fake.grant(name, "viewer" | "creator")` limits it as the object roles do
(`roles/storage.objectViewer`: read and list; with `roles/storage.objectCreator` also
create, but never delete, and never overwrite, which GCS authorizes as a delete). A
refused request gets GCS's 403 `AccessDenied`, counted as `denied`.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.utils
import functools
import hashlib
import http.client
import itertools
import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import google_crc32c
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "GcsFake",
    "Pause",
    "RequestRecord",
    "StoredObject",
    "service_account_key",
    "storage_options",
]

_XML_NS = "http://doc.s3.amazonaws.com/2006-03-01"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_LIST_KEYS = 1000
_PAUSE_LIMIT_SECONDS = 30.0  # a forgotten pause must not hang the suite
_CONTROL = "_fake"  # path prefix of the test-control API
_IDENTITY = "_as"  # path prefix `/_as/<identity>/`: the request acts as that identity
_ROLES = ("viewer", "creator")
_WRITES = frozenset({"put", "copy", "multipart_initiate", "multipart_part", "multipart_complete"})


@dataclass(frozen=True)
class StoredObject:
    """One live object version; GCS keeps no history here, so a generation is replaced whole."""

    data: bytes
    generation: int
    etag: str  # quoted, as sent in the ETag header
    last_modified: datetime
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the fake saw it (no headers: nothing credential-like is kept)."""

    method: str
    operation: str
    path: str  # decoded "/bucket/object"
    query: str  # raw query string
    status: int
    generation_match: str | None = None  # the x-goog-if-generation-match header, if sent
    range: str | None = None  # the Range header, if sent


@dataclass
class _Hold:
    """Server side of a `Pause`: the first matching request waits here until released."""

    method: str
    path_contains: str
    reached: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    taken: bool = False

    def hold(self) -> None:
        self.reached.set()
        self.resume.wait(_PAUSE_LIMIT_SECONDS)


@dataclass
class _Fault:
    method: str
    path_contains: str
    status: int
    remaining: int
    applied: bool


@dataclass
class _Upload:
    bucket: str
    key: str
    content_type: str
    if_generation_match: int | None
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Request:
    method: str
    operation: str
    bucket: str
    key: str
    query: Mapping[str, list[str]]
    raw_query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    identity: str = ""  # "" : the fake's default identity, which may do anything

    @property
    def display_path(self) -> str:
        return f"/{self.bucket}/{self.key}" + (f"?{self.raw_query}" if self.raw_query else "")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _UnsatisfiableRangeError(Exception):
    """A Range header that selects no byte of the object."""


class _BadRequestError(Exception):
    """A request the fake refuses as GCS would (400)."""


class GcsFake:
    """A GCS XML API fake serving on 127.0.0.1 (ephemeral port) from a child process.

    The server runs out of process because some deltalake calls (`DeltaTable.history()`)
    block on HTTP while holding the GIL, which deadlocks a server thread in the test
    process. This object starts and stops it and reads its state through a JSON
    control API under `/_fake/`. Buckets spring into existence on first use unless
    `auto_create_buckets=False`; then only `create_bucket()` makes them.
    """

    def __init__(self, *, auto_create_buckets: bool = True) -> None:
        self._auto_create = auto_create_buckets
        self._process: subprocess.Popen[bytes] | None = None
        self._base_url: str | None = None

    def start(self) -> GcsFake:
        if self._process is not None:
            return self
        args = [sys.executable, __file__]
        if not self._auto_create:
            args.append("--no-auto-create-buckets")
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert process.stdout is not None
        line = process.stdout.readline()  # the child prints its base URL once listening
        if not line:
            process.wait()
            raise RuntimeError(f"GCS fake exited with status {process.returncode}")
        self._process, self._base_url = process, line.decode().strip()
        return self

    def stop(self) -> None:
        """Stop the server: closing its stdin makes it release held requests and exit."""
        process, self._process, self._base_url = self._process, None, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> GcsFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for a service-account key's `gcs_base_url`."""
        if self._base_url is None:
            raise RuntimeError("GcsFake is not running")
        return self._base_url

    def create_bucket(self, name: str) -> None:
        self._call("create_bucket", name=name)

    def identity_url(self, identity: str) -> str:
        """A base URL (for a key's `gcs_base_url`) whose requests act as `identity`."""
        return f"{self.base_url}/{_IDENTITY}/{identity}"

    def grant(self, identity: str, role: str) -> None:
        """Limit `identity` to `role`: "viewer" (read, list) or "creator" (also create new
        objects; no delete, no overwrite). An identity never granted may do anything."""
        if role not in _ROLES:
            raise ValueError(f"role must be one of {_ROLES}, not {role!r}")
        self._call("grant", identity=identity, role=role)

    def stats(self) -> dict[str, int]:
        """Requests per operation (`put`, `get`, `head`, `list`, `copy`, `delete`,
        `multipart_initiate|part|complete|abort`), plus `precondition_failures` (412s
        sent), `denied` (403s for an identity's role) and `injected_failures`."""
        return cast("dict[str, int]", self._call("stats"))

    def requests(self) -> list[RequestRecord]:
        """Every request served so far, in order of completion."""
        records = cast("list[dict[str, Any]]", self._call("requests"))
        return [RequestRecord(**r) for r in records]

    def reset_stats(self) -> None:
        self._call("reset_stats")

    def fail_next(
        self,
        method: str,
        path_contains: str,
        status: int,
        count: int = 1,
        *,
        applied: bool = False,
    ) -> None:
        """Answer the next `count` matching requests with `status` (and a GCS error body).

        A request matches on its method and on `path_contains` being a substring of
        its decoded `/bucket/object?query`. With `applied=True` the request takes
        effect first and only its response is lost, as when a connection drops after
        a write. object_store retries 5xx/429/408 itself (10 times by default), so a
        few injected 503s are invisible to callers.
        """
        self._call(
            "fail_next",
            method=method,
            path_contains=path_contains,
            status=status,
            count=count,
            applied=applied,
        )

    def pause_on(self, method: str, path_contains: str) -> Pause:
        """Hold the next matching request before it takes effect (see `Pause`)."""
        hold_id = cast("int", self._call("pause", method=method, path_contains=path_contains))
        return Pause(self, hold_id)

    def object_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys visible in a bucket now, sorted: server-side truth, bypassing any client."""
        return cast("list[str]", self._call("objects", bucket=bucket, prefix=prefix))

    def get_object(self, bucket: str, key: str) -> StoredObject | None:
        found = cast("dict[str, Any] | None", self._call("object", bucket=bucket, key=key))
        if found is None:
            return None
        return StoredObject(
            data=base64.b64decode(found["data"]),
            generation=int(found["generation"]),
            etag=str(found["etag"]),
            last_modified=datetime.fromisoformat(found["last_modified"]),
            content_type=str(found["content_type"]),
        )

    def open_uploads(self) -> list[tuple[str, str]]:
        """(bucket, key) of each multipart upload initiated but not completed or aborted."""
        uploads = cast("list[list[str]]", self._call("uploads"))
        return [(bucket, key) for bucket, key in uploads]

    def _call(self, action: str, **args: object) -> object:
        address = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(
            address.hostname or "127.0.0.1", address.port, timeout=_PAUSE_LIMIT_SECONDS * 2
        )
        try:
            conn.request("POST", f"/{_CONTROL}/{action}", body=json.dumps(args).encode())
            response = conn.getresponse()
            result = json.loads(response.read())
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"GCS fake refused {action}: {result}")
        return result


@dataclass(frozen=True)
class Pause:
    """A request the fake holds before it takes effect.

    `wait()` returns True once the request has arrived, so a test can inspect state
    mid-flight without sleeping; `release()` lets it proceed. The fake lets a held
    request go by itself after 30 s so a failed test cannot hang the suite.
    """

    fake: GcsFake
    hold_id: int

    def wait(self, timeout: float = 10.0) -> bool:
        return cast("bool", self.fake._call("wait", id=self.hold_id, timeout=timeout))

    def release(self) -> None:
        self.fake._call("release", id=self.hold_id)


class _FakeState:
    """Buckets, uploads, counters and test hooks; lives in the server process."""

    def __init__(self, *, auto_create_buckets: bool) -> None:
        self._auto_create = auto_create_buckets
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, StoredObject]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._resumable: dict[
            str, tuple[str, bytearray, str]
        ] = {}  # JSON API: id -> (key, data, type)
        self._generations = itertools.count(1_700_000_000_000_000)  # GCS-like microsecond ids
        self._counts: Counter[str] = Counter()
        self._log: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._holds: dict[int, _Hold] = {}
        self._hold_ids = itertools.count(1)
        self._roles: dict[str, str] = {}
        self.connections: set[socket.socket] = set()

    # -- control API (JSON over /_fake/...) ----------------------------------------------

    def control(self, method: str, action: str, args: dict[str, Any]) -> object:
        """One test-control call; the client side is `GcsFake`."""
        with self._lock:
            if action == "stats":
                counts = dict(self._counts)
                counts.setdefault("precondition_failures", 0)
                counts.setdefault("denied", 0)
                counts.setdefault("injected_failures", 0)
                return counts
            if action == "requests":
                return [asdict(r) for r in self._log]
            if action == "reset_stats":
                self._counts.clear()
                self._log.clear()
                return None
            if action == "create_bucket":
                self._buckets.setdefault(str(args["name"]), {})
                return None
            if action == "grant":
                self._roles[str(args["identity"])] = str(args["role"])
                return None
            if action == "fail_next":
                self._faults.append(
                    _Fault(
                        str(args["method"]).upper(),
                        str(args["path_contains"]),
                        int(args["status"]),
                        int(args["count"]),
                        bool(args["applied"]),
                    )
                )
                return None
            if action == "pause":
                hold_id = next(self._hold_ids)
                self._holds[hold_id] = _Hold(
                    str(args["method"]).upper(), str(args["path_contains"])
                )
                return hold_id
            if action == "release":
                self._holds[int(args["id"])].resume.set()
                return None
            if action == "objects":
                objects = self._buckets.get(str(args["bucket"]), {})
                return sorted(k for k in objects if k.startswith(str(args["prefix"])))
            if action == "object":
                stored = self._buckets.get(str(args["bucket"]), {}).get(str(args["key"]))
                return None if stored is None else _object_json(stored)
            if action == "uploads":
                return sorted([u.bucket, u.key] for u in self._uploads.values())
            if action != "wait":
                raise _BadRequestError(f"unknown control action {action!r}")
            hold = self._holds[int(args["id"])]
        return hold.reached.wait(float(args["timeout"]))  # outside the lock: it blocks

    # -- JSON API (what google-cloud-storage uses: Dagster's GCSComputeLogManager) -------

    def json_api(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        """The JSON API's bucket get, object get/download/list/delete and media, multipart
        and resumable uploads: enough for google-cloud-storage's Blob and Bucket calls.
        Objects are the XML API's; a bucket is named "storage", "upload" or "download"
        at the fake's peril."""
        root, _, rest = path.lstrip("/").partition("/")
        parts = [unquote(p) for p in rest.split("/")]  # storage/v1 or v1, b, <bucket>, o, <key>
        parts = parts[1:] if root == "storage" else parts[2:]  # past "v1" / "storage/v1"
        if len(parts) < 2 or parts[0] != "b":
            return _json_error(404, f"no such JSON API resource {path}")
        bucket = parts[1]
        key = "/".join(parts[3:]) if len(parts) > 3 and parts[2] == "o" else None

        def arg(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        with self._lock:
            self._counts[f"json_{method.lower()}"] += 1
            objects = self._bucket(bucket)
            if objects is None:
                return _json_error(404, f"The specified bucket does not exist: {bucket}")
            if root == "upload":
                return self._json_upload(bucket, objects, arg, headers, body)
            if len(parts) == 2:
                return _json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket})
            if key is None:
                prefix = arg("prefix") or ""
                items = [
                    _object_resource(bucket, k, v)
                    for k, v in sorted(objects.items())
                    if k.startswith(prefix)
                ]
                return _json(200, {"kind": "storage#objects", "items": items})
            stored = objects.get(key)
            if stored is None:
                return _json_error(404, f"No such object: {bucket}/{key}")
            if method == "DELETE":
                del objects[key]
                return _Response(204)
            if arg("alt") == "media" or root == "download":
                return _Response(200, _object_headers(stored), stored.data)
            return _json(200, _object_resource(bucket, key, stored))

    def _json_upload(
        self,
        bucket: str,
        objects: dict[str, StoredObject],
        arg: Any,
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        kind = arg("uploadType")
        upload_id = arg("upload_id")
        if upload_id is not None:  # a resumable upload's chunk
            upload = self._resumable[upload_id]
            upload[1].extend(body)
            total = headers.get("content-range", "").rpartition("/")[2]
            if total == "*":
                end = len(upload[1]) - 1
                return _Response(308, {"Range": f"bytes=0-{end}"} if end >= 0 else {})
            del self._resumable[upload_id]
            stored = self._store(objects, upload[0], bytes(upload[1]), upload[2])
            return _json(200, _object_resource(bucket, upload[0], stored))
        if kind == "resumable":
            metadata = json.loads(body or b"{}")
            name = metadata.get("name") or arg("name")
            new_id = secrets.token_hex(8)
            content_type = metadata.get("contentType") or headers.get(
                "x-upload-content-type", "application/octet-stream"
            )
            self._resumable[new_id] = (name, bytearray(), content_type)
            location = (
                f"http://{headers['host']}/upload/storage/v1/b/{bucket}/o"
                f"?uploadType=resumable&upload_id={new_id}"
            )
            return _Response(200, {"Location": location})
        if kind == "multipart":
            message = email.message_from_bytes(
                b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body
            )
            meta_part, media_part = cast("list[email.message.Message]", message.get_payload())
            metadata = json.loads(cast("bytes", meta_part.get_payload(decode=True)))
            data = cast("bytes", media_part.get_payload(decode=True))
            name = metadata.get("name") or arg("name")
            content_type = media_part.get_content_type()
        else:  # media
            name, data, content_type = arg("name"), body, _content_type(headers)
        stored = self._store(objects, name, data, content_type)
        return _json(200, _object_resource(bucket, name, stored))

    def release_all(self) -> None:
        with self._lock:
            holds = list(self._holds.values())
        for hold in holds:
            hold.resume.set()

    # -- request handling --------------------------------------------------------------

    def register(self, conn: socket.socket, live: bool) -> None:
        with self._lock:
            if live:
                self.connections.add(conn)
            else:
                self.connections.discard(conn)

    def handle(self, req: _Request) -> _Response:
        fault = self._take(self._faults, req)
        if fault is not None and not fault.applied:
            response = _error(fault.status, "InjectedFault", "failure injected by the test")
        else:
            hold = self._take_hold(req)
            if hold is not None:
                hold.hold()
            try:
                response = self._apply(req)
            except _BadRequestError as exc:
                response = _error(400, "InvalidArgument", str(exc))
            if fault is not None:
                response = _error(fault.status, "InjectedFault", "response lost after success")
        with self._lock:
            self._counts[req.operation] += 1
            self._counts["injected_failures"] += fault is not None
            self._counts["precondition_failures"] += response.status == 412
            self._counts["denied"] += response.status == 403 and fault is None
            self._log.append(
                RequestRecord(
                    req.method,
                    req.operation,
                    f"/{req.bucket}/{req.key}",
                    req.raw_query,
                    response.status,
                    req.headers.get("x-goog-if-generation-match"),
                    req.headers.get("range"),
                )
            )
        return response

    def _take(self, faults: list[_Fault], req: _Request) -> _Fault | None:
        with self._lock:
            for fault in faults:
                if fault.method == req.method and fault.path_contains in req.display_path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        faults.remove(fault)
                    return fault
        return None

    def _take_hold(self, req: _Request) -> _Hold | None:
        with self._lock:
            for hold in self._holds.values():
                if (
                    not hold.taken
                    and hold.method == req.method
                    and hold.path_contains in req.display_path
                ):
                    hold.taken = True
                    return hold
        return None

    def _apply(self, req: _Request) -> _Response:
        handler = {
            "list": self._list,
            "get": self._get,
            "head": self._get,
            "put": self._put,
            "copy": self._copy,
            "delete": self._delete,
            "multipart_initiate": self._initiate,
            "multipart_part": self._put_part,
            "multipart_complete": self._complete,
            "multipart_abort": self._abort,
        }.get(req.operation)
        if handler is None:
            return _error(501, "NotImplemented", f"{req.method} {req.display_path}")
        with self._lock:
            objects = self._bucket(req.bucket)
            if objects is None:
                return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
            denied = self._denied(req, objects)
            if denied is not None:
                return _error(403, "AccessDenied", f"Access denied. {req.identity} {denied}")
            return handler(req, objects)

    def _denied(self, req: _Request, objects: dict[str, StoredObject]) -> str | None:
        """What the request's identity lacks for it (as GCS IAM decides), or None."""
        role = self._roles.get(req.identity)
        if role is None or req.operation in ("list", "get", "head"):
            return None
        if role == "viewer" or req.operation not in _WRITES | {"multipart_abort"}:
            permission = "create" if req.operation in _WRITES else "delete"
            return f"does not have storage.objects.{permission} access to {req.display_path}."
        if req.operation in ("put", "copy", "multipart_complete") and req.key in objects:
            return f"does not have storage.objects.delete access to {req.display_path}."
        return None

    def _bucket(self, name: str) -> dict[str, StoredObject] | None:
        if name not in self._buckets and self._auto_create and name:
            self._buckets[name] = {}
        return self._buckets.get(name)

    def _store(
        self, objects: dict[str, StoredObject], key: str, data: bytes, content_type: str
    ) -> StoredObject:
        stored = StoredObject(
            data=data,
            generation=next(self._generations),
            etag=f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            last_modified=datetime.now(UTC),
            content_type=content_type,
        )
        objects[key] = stored
        return stored

    def _get(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        stored = objects.get(req.key)
        generation = req.param("generation")
        if stored is None or (generation is not None and generation != str(stored.generation)):
            return _error(404, "NoSuchKey", "The specified key does not exist.")
        headers = _object_headers(stored)
        refused = _check_get_conditions(stored, req.headers)
        if refused is not None:
            if refused == 304:
                return _Response(304, headers)
            return _error(refused, "PreconditionFailed", "At least one precondition failed.")
        try:
            selected = _byte_range(req.headers.get("range"), stored.size)
        except _UnsatisfiableRangeError:
            response = _error(416, "InvalidRange", "The requested range cannot be satisfied.")
            response.headers["Content-Range"] = f"bytes */{stored.size}"
            return response
        if selected is None:
            headers["Content-Length"] = str(stored.size)
            return _Response(200, headers, stored.data)
        start, end = selected
        headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        headers["Content-Length"] = str(end - start + 1)
        return _Response(206, headers, stored.data[start : end + 1])

    def _put(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        refused = _check_generation(objects.get(req.key), req.headers)
        if refused is not None:
            return refused
        stored = self._store(objects, req.key, req.body, _content_type(req.headers))
        return _Response(200, _write_headers(stored))

    def _copy(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        source_bucket, _, source_key = req.headers["x-goog-copy-source"].lstrip("/").partition("/")
        source_objects = self._bucket(unquote(source_bucket))
        source = (source_objects or {}).get(unquote(source_key))
        if source is None:
            return _error(404, "NoSuchKey", "The specified source key does not exist.")
        refused = _check_generation(objects.get(req.key), req.headers)
        if refused is not None:
            return refused
        stored = self._store(objects, req.key, source.data, source.content_type)
        body = _xml(
            "CopyObjectResult",
            [("LastModified", _iso(stored.last_modified)), ("ETag", stored.etag)],
        )
        return _Response(200, _write_headers(stored), body)

    def _delete(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        stored = objects.get(req.key)
        if stored is None:
            return _error(404, "NoSuchKey", "The specified key does not exist.")
        refused = _check_generation(stored, req.headers)
        if refused is not None:
            return refused
        del objects[req.key]
        return _Response(204)

    def _list(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        prefix = req.param("prefix") or ""
        delimiter = req.param("delimiter") or ""
        max_keys = min(int(req.param("max-keys") or _MAX_LIST_KEYS), _MAX_LIST_KEYS)
        after, skip_prefix = req.param("start-after"), None
        token = req.param("continuation-token")
        if token:
            after, skip_prefix = _decode_token(token)
        contents: list[tuple[str, StoredObject]] = []
        prefixes: list[str] = []
        last: tuple[str, bool] | None = None
        truncated = False
        for key in sorted(k for k in objects if k.startswith(prefix)):
            if (after is not None and key <= after) or (
                skip_prefix is not None and key.startswith(skip_prefix)
            ):
                continue
            common = _common_prefix(key, prefix, delimiter)
            if common is not None and prefixes and prefixes[-1] == common:
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                last = (common, True)
            else:
                contents.append((key, objects[key]))
                last = (key, False)
        fields: list[tuple[str, str | list[tuple[str, str]]]] = [
            ("Name", req.bucket),
            ("Prefix", prefix),
            ("KeyCount", str(len(contents) + len(prefixes))),
            ("MaxKeys", str(max_keys)),
            ("IsTruncated", "true" if truncated else "false"),
        ]
        if delimiter:
            fields.append(("Delimiter", delimiter))
        if truncated and last is not None:
            fields.append(("NextContinuationToken", _encode_token(*last)))
        # All Contents before all CommonPrefixes: quick-xml cannot read interleaved lists.
        for key, stored in contents:
            fields.append(
                (
                    "Contents",
                    [
                        ("Key", key),
                        ("Generation", str(stored.generation)),
                        ("MetaGeneration", "1"),
                        ("LastModified", _iso(stored.last_modified)),
                        ("ETag", stored.etag),
                        ("Size", str(stored.size)),
                    ],
                )
            )
        fields.extend(("CommonPrefixes", [("Prefix", p)]) for p in prefixes)
        return _Response(200, {"Content-Type": "application/xml"}, _xml("ListBucketResult", fields))

    def _initiate(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        upload_id = secrets.token_urlsafe(24)
        match = req.headers.get("x-goog-if-generation-match")
        self._uploads[upload_id] = _Upload(
            req.bucket, req.key, _content_type(req.headers), _int(match) if match else None
        )
        body = _xml(
            "InitiateMultipartUploadResult",
            [("Bucket", req.bucket), ("Key", req.key), ("UploadId", upload_id)],
        )
        return _Response(200, {"Content-Type": "application/xml"}, body)

    def _upload(self, req: _Request) -> _Upload | None:
        upload = self._uploads.get(req.param("uploadId") or "")
        if upload is None or (upload.bucket, upload.key) != (req.bucket, req.key):
            return None
        return upload

    def _put_part(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        upload = self._upload(req)
        if upload is None:
            return _error(404, "NoSuchUpload", "The specified upload does not exist.")
        number = _int(req.param("partNumber") or "")
        if not 1 <= number <= 10_000:
            raise _BadRequestError(f"partNumber {number} is outside 1..10000")
        etag = f'"{hashlib.md5(req.body, usedforsecurity=False).hexdigest()}"'
        upload.parts[number] = (etag, req.body)
        return _Response(200, {"ETag": etag, "Content-Length": "0"})

    def _complete(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        upload = self._upload(req)
        if upload is None:
            return _error(404, "NoSuchUpload", "The specified upload does not exist.")
        try:
            root = ET.fromstring(req.body)  # noqa: S314 - body comes from a local test client
        except ET.ParseError as exc:
            return _error(400, "MalformedXML", str(exc))
        listed = [
            (_int(part.findtext("PartNumber") or ""), (part.findtext("ETag") or "").strip('"'))
            for part in root.iter()
            if part.tag.rsplit("}", 1)[-1] == "Part"
        ]
        numbers = [n for n, _ in listed]
        if not listed or numbers != sorted(set(numbers)):
            return _error(400, "InvalidPartOrder", "Parts must be listed in ascending order.")
        chunks: list[bytes] = []
        for number, etag in listed:
            part = upload.parts.get(number)
            if part is None or part[0].strip('"') != etag:
                return _error(400, "InvalidPart", f"part {number} was not uploaded with that ETag")
            chunks.append(part[1])
        headers = dict(req.headers)
        if upload.if_generation_match is not None:
            headers["x-goog-if-generation-match"] = str(upload.if_generation_match)
        refused = _check_generation(objects.get(req.key), headers)
        if refused is not None:
            return refused
        del self._uploads[req.param("uploadId") or ""]
        stored = self._store(objects, req.key, b"".join(chunks), upload.content_type)
        body = _xml(
            "CompleteMultipartUploadResult",
            [
                ("Location", f"/{req.bucket}/{req.key}"),
                ("Bucket", req.bucket),
                ("Key", req.key),
                ("ETag", stored.etag),
            ],
        )
        headers = _write_headers(stored)
        headers["Content-Type"] = "application/xml"
        return _Response(200, headers, body)

    def _abort(self, req: _Request, objects: dict[str, StoredObject]) -> _Response:
        if self._upload(req) is None:
            return _error(404, "NoSuchUpload", "The specified upload does not exist.")
        del self._uploads[req.param("uploadId") or ""]
        return _Response(204)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    state: _FakeState

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (a SIGKILLed writer, in the crash
        suites) is expected, not a server error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as object_store's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    @property
    def _state(self) -> _FakeState:
        return cast("_Server", self.server).state

    def setup(self) -> None:
        super().setup()
        self._state.register(self.connection, live=True)

    def finish(self) -> None:
        self._state.register(self.connection, live=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the suite's output stays readable."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        bucket, _, key = split.path.lstrip("/").partition("/")
        identity = ""
        if bucket == _IDENTITY:
            identity, _, rest = key.partition("/")
            bucket, _, key = rest.partition("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if bucket == _CONTROL:  # GCS bucket names cannot start with "_": no clash
            self._respond(self._control(key, headers))
            return
        query = parse_qs(split.query, keep_blank_values=True)
        if bucket in _JSON_ROOTS:
            body = self._read_body(headers)
            self._respond(self._state.json_api(self.command, split.path, query, headers, body))
            return
        request = _Request(
            method=self.command,
            operation=_operation(self.command, key, query, headers),
            bucket=unquote(bucket),
            key=unquote(key),  # object_store percent-encodes every non-alphanumeric byte once
            query=query,
            raw_query=split.query,
            headers=headers,
            body=self._read_body(headers),
            identity=identity,
        )
        self._respond(self._state.handle(request))

    def _control(self, action: str, headers: Mapping[str, str]) -> _Response:
        try:
            args = json.loads(self._read_body(headers) or b"{}")
            result = self._state.control(self.command, action, args)
        except (_BadRequestError, KeyError, ValueError, TypeError) as exc:
            return _Response(
                400, {"Content-Type": "application/json"}, json.dumps(str(exc)).encode()
            )
        return _Response(200, {"Content-Type": "application/json"}, json.dumps(result).encode())

    def _respond(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        bodyless = self.command == "HEAD" or response.status in (204, 304)
        if "Content-Length" not in response.headers and response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not bodyless:
            self.wfile.write(response.body)

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(headers.get("content-length") or 0))


def _operation(
    method: str, key: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
) -> str:
    if method == "GET" and not key:
        return "list"
    if method in ("GET", "HEAD"):
        return method.lower()
    if method == "PUT":
        if "uploadId" in query:
            return "multipart_part"
        return "copy" if "x-goog-copy-source" in headers else "put"
    if method == "POST":
        if "uploads" in query:
            return "multipart_initiate"
        return "multipart_complete" if "uploadId" in query else "unsupported"
    if method == "DELETE":
        return "multipart_abort" if "uploadId" in query else "delete"
    return "unsupported"


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _BadRequestError(f"not an integer: {value!r}") from None


def _check_generation(current: StoredObject | None, headers: Mapping[str, str]) -> _Response | None:
    """`x-goog-if-generation-match`: 0 means "must not exist", N means "must be generation N"."""
    wanted = headers.get("x-goog-if-generation-match")
    if wanted is None:
        return None
    generation = _int(wanted)
    holds = (
        current is None
        if generation == 0
        else (current is not None and current.generation == generation)
    )
    if holds:
        return None
    return _error(
        412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
    )


def _check_get_conditions(stored: StoredObject, headers: Mapping[str, str]) -> int | None:
    """HTTP conditional-GET headers object_store can send; returns 412/304 or None."""
    if_match = headers.get("if-match")
    if if_match is not None and not _etag_matches(if_match, stored.etag):
        return 412
    unmodified_since = _http_date(headers.get("if-unmodified-since"))
    if unmodified_since is not None and _whole_seconds(stored) > unmodified_since:
        return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, stored.etag):
        return 304
    modified_since = _http_date(headers.get("if-modified-since"))
    if modified_since is not None and _whole_seconds(stored) <= modified_since:
        return 304
    return None


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _whole_seconds(stored: StoredObject) -> datetime:
    return stored.last_modified.replace(microsecond=0)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive (start, end) selected by a single `Range: bytes=` spec; None = whole object.

    Syntactically unusable ranges are ignored (RFC 9110); satisfiable-syntax ranges
    that select nothing raise `_UnsatisfiableRangeError` (416), as GCS does.
    """
    match = _RANGE.match(header or "")
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise _UnsatisfiableRangeError
        return max(0, size - length), size - 1
    start = int(first)
    if start >= size:
        raise _UnsatisfiableRangeError
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return key[: at + len(delimiter)] if at >= 0 else None


def _encode_token(last: str, is_prefix: bool) -> str:
    raw = json.dumps({"after": last, "prefix": is_prefix}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, str | None]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = str(value["after"])
    except (ValueError, KeyError, TypeError):
        raise _BadRequestError("invalid continuation-token") from None
    return after, after if value.get("prefix") else None


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "application/octet-stream")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _object_headers(stored: StoredObject) -> dict[str, str]:
    md5 = base64.b64encode(bytes.fromhex(stored.etag.strip('"'))).decode()
    return {
        "Content-Type": stored.content_type,
        "ETag": stored.etag,
        "Last-Modified": email.utils.format_datetime(stored.last_modified, usegmt=True),
        "Accept-Ranges": "bytes",
        "x-goog-generation": str(stored.generation),
        "x-goog-metageneration": "1",
        "x-goog-stored-content-length": str(stored.size),
        "x-goog-hash": f"crc32c={_crc32c(stored.data)},md5={md5}",
    }


def _write_headers(stored: StoredObject) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "x-goog-generation": str(stored.generation),
        "x-goog-metageneration": "1",
    }


def _object_json(stored: StoredObject) -> dict[str, object]:
    return {
        "data": base64.b64encode(stored.data).decode(),
        "generation": stored.generation,
        "etag": stored.etag,
        "last_modified": stored.last_modified.isoformat(),
        "content_type": stored.content_type,
    }


def _xml(root: str, fields: list[tuple[str, str | list[tuple[str, str]]]]) -> bytes:
    def render(items: list[tuple[str, str | list[tuple[str, str]]]]) -> str:
        out = []
        for name, value in items:
            inner = escape(value) if isinstance(value, str) else render(list(value))
            out.append(f"<{name}>{inner}</{name}>")
        return "".join(out)

    text = (
        f"<?xml version='1.0' encoding='UTF-8'?><{root} xmlns='{_XML_NS}'>{render(fields)}</{root}>"
    )
    return text.encode()


_JSON_ROOTS = ("storage", "upload", "download")


def _json(status: int, value: object) -> _Response:
    return _Response(status, {"Content-Type": "application/json"}, json.dumps(value).encode())


def _json_error(status: int, message: str) -> _Response:
    return _json(status, {"error": {"code": status, "message": message}})


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def _object_resource(bucket: str, key: str, stored: StoredObject) -> dict[str, str]:
    md5 = base64.b64encode(bytes.fromhex(stored.etag.strip('"'))).decode()
    return {
        "kind": "storage#object",
        "bucket": bucket,
        "name": key,
        "id": f"{bucket}/{key}/{stored.generation}",
        "generation": str(stored.generation),
        "metageneration": "1",
        "size": str(stored.size),
        "contentType": stored.content_type,
        "md5Hash": md5,
        "crc32c": _crc32c(stored.data),
        "updated": _iso(stored.last_modified),
        "timeCreated": _iso(stored.last_modified),
    }


def _error(status: int, code: str, message: str) -> _Response:
    body = _xml("Error", [("Code", code), ("Message", message)])
    return _Response(status, {"Content-Type": "application/xml"}, body)


# -- credentials ---------------------------------------------------------------------------


@functools.cache
def _throwaway_private_key() -> str:
    """A fresh RSA key per process: object_store wants a parseable key; nothing is signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def service_account_key(base_url: str) -> str:
    """A service-account key JSON aimed at the fake.

    object_store reads two non-standard fields: `gcs_base_url` replaces
    https://storage.googleapis.com and `disable_oauth` sends empty bearer tokens
    instead of fetching one from Google. (`STORAGE_EMULATOR_HOST` is ignored.)
    """
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "gcs-fake",
            "private_key_id": secrets.token_hex(20),
            "private_key": _throwaway_private_key(),
            "client_email": "gcs-fake@gcs-fake.iam.gserviceaccount.com",
            "client_id": "0",
            "token_uri": f"{base_url}/token",
            "gcs_base_url": base_url,
            "disable_oauth": True,
        }
    )


def storage_options(base_url: str) -> dict[str, str]:
    """Options that make both delta-rs and obstore's GCSStore talk to the fake."""
    return {"google_service_account_key": service_account_key(base_url)}


def _serve_until_stdin_closes(*, auto_create_buckets: bool) -> None:
    """The child process: serve until the parent closes our stdin (or dies)."""
    state = _FakeState(auto_create_buckets=auto_create_buckets)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    sys.stdout.write(f"http://{host!s}:{port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.buffer.read()
    state.release_all()
    server.shutdown()
    for conn in list(state.connections):
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
    server.server_close()


if __name__ == "__main__":
    _serve_until_stdin_closes(auto_create_buckets="--no-auto-create-buckets" not in sys.argv)
