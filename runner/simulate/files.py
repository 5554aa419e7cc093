"""The Files API as the simulator serves it: resumable uploads streamed to disk, File
resources, and downloads of the files batches write.

Owns: upload sessions (start, upload, query, finalize, cancel) and the headers of
Google's resumable protocol, file names, the File resource, the folder files live
in, and download bodies. Must not know batches, faults or counters, or hold a file's
bytes whole in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from runner.simulate.gemini import (
    Answer,
    error_reply,
    json_reply,
    not_found_entity,
    resource_id,
    timestamp,
)
from runner.simulate.wire import Body, FileSlice, body_pieces

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.streams.buffered import BufferedByteReceiveStream

    from runner.simulate.wire import Request

# POST /upload/v1beta/files (google-genai 3.x asks for /upload/v1/files)
UPLOAD_PATH = re.compile(r"^/upload/v1(?:beta|alpha)?/files$")
# GET /v1beta/files/ID, DELETE it, and GET .../files/ID:download?alt=media, with or
# without the "/download" prefix: google-genai's files.download asks for
# /v1beta/files/ID:download (google/genai/files.py), Google's REST samples for
# /download/v1beta/files/ID:download (ai.google.dev/gemini-api/docs/batch-api).
FILE_PATH = re.compile(
    r"^(/download)?/(v1(?:beta|alpha)?)/files/([a-z0-9-]+)(:download)?$"
)
# What Google's upload start answers in X-Goog-Upload-Chunk-Granularity (quoted by
# clients of the protocol, e.g. 8388608 in tests that replay it).
CHUNK_GRANULARITY = 8 * 1024 * 1024
# Files are kept 48 hours (ai.google.dev/gemini-api/docs/files).
RETENTION_NS = 48 * 3600 * 10**9
# A File ID: "up to 40 characters that are lowercase alphanumeric or dashes (-)...
# cannot start or end with a dash" (ai.google.dev/api/files, File.name).
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the API holds: uploaded by a client or written by a batch."""

    name: str  # "files/ID"
    path: Path
    size: int
    mime_type: str
    display_name: str | None
    create_ns: int
    sha256: str  # hex digest
    generated: bool  # written by the API (downloadable), not uploaded


@dataclass(slots=True)
class _Session:
    """A resumable upload in progress."""

    id: str
    path: Path
    declared: int | None  # X-Goog-Upload-Header-Content-Length, if sent
    mime_type: str
    display_name: str | None
    name: str | None  # asked for at start
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    file: str | None = None  # the File's name once finalized


class FileStore:
    """The files and upload sessions of one server, on disk under `root`.

    Thread-safe: its dictionaries are guarded by its own lock, so `reset` may run in
    any thread while the event loop serves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._files: dict[str, StoredFile] = {}
        self._sessions: dict[str, _Session] = {}

    def open(self, root: Path) -> None:
        """Keep files under `root` (the server's temporary folder) from now on."""
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._root = root

    def reset(self) -> None:
        """Forget every file and session and delete their bytes."""
        with self._lock:
            files, self._files = self._files, {}
            sessions, self._sessions = self._sessions, {}
        for stored in files.values():
            stored.path.unlink(missing_ok=True)
        for session in sessions.values():
            session.path.unlink(missing_ok=True)

    def get(self, name: str) -> StoredFile | None:
        """The file called `name` ("files/ID"), if it exists."""
        with self._lock:
            return self._files.get(name)

    def new_path(self, prefix: str) -> Path:
        """A fresh path under the root for a file about to be written."""
        with self._lock:
            root = self._root
        if root is None:
            raise RuntimeError("the file store is not open")
        return root / f"{prefix}-{secrets.token_hex(8)}"

    def add_generated(
        self, name: str, path: Path, mime_type: str, sha256: str
    ) -> StoredFile:
        """Register a file the API wrote (a batch's results) under `name`."""
        stored = StoredFile(
            name=name,
            path=path,
            size=path.stat().st_size,
            mime_type=mime_type,
            display_name=None,
            create_ns=time.time_ns(),
            sha256=sha256,
            generated=True,
        )
        with self._lock:
            self._files[name] = stored
        return stored

    # -- routes -------------------------------------------------------------------

    def start(self, req: Request, base_url: str) -> Answer:
        """`POST /upload/v1beta/files`, `X-Goog-Upload-Command: start`: open a
        session and answer its URL in X-Goog-Upload-URL, as google-genai expects
        (google/genai/files.py upload, google/genai/_extra_utils.py
        prepare_resumable_upload)."""
        try:
            payload = json.loads(req.body) if req.body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error_reply(400, f"Invalid JSON payload received. {exc}", _INVALID)
        described = payload.get("file") if isinstance(payload, dict) else None
        described = described if isinstance(described, dict) else {}
        declared_text = req.headers.get("x-goog-upload-header-content-length")
        declared = None
        if declared_text is not None:
            if not declared_text.strip().isdigit():
                return error_reply(
                    400, "Invalid X-Goog-Upload-Header-Content-Length.", _INVALID
                )
            declared = int(declared_text)
        mime_type = (
            req.headers.get("x-goog-upload-header-content-type")
            or _either(described, "mimeType", "mime_type")
            or "application/octet-stream"
        )
        name = described.get("name")
        if name is not None:
            if not isinstance(name, str) or not _ID.match(name.removeprefix("files/")):
                return error_reply(400, f"Invalid file name: {name!r}.", _INVALID)
            name = "files/" + name.removeprefix("files/")
            if self.get(name) is not None:
                message = f"File {name} already exists."
                return error_reply(409, message, "ALREADY_EXISTS")
        display = _either(described, "displayName", "display_name")
        session = _Session(
            id=secrets.token_urlsafe(24),
            path=self.new_path("upload"),
            declared=declared,
            mime_type=str(mime_type),
            display_name=display if isinstance(display, str) else None,
            name=name,
        )
        session.path.touch()
        with self._lock:
            self._sessions[session.id] = session
        query = urllib.parse.urlencode(
            {"upload_id": session.id, "upload_protocol": "resumable"}
        )
        url = f"{base_url}{req.path}?{query}"
        return Answer(
            200,
            b"",
            content_type="text/plain; charset=utf-8",
            headers=(
                ("X-Goog-Upload-Status", "active"),
                ("X-Goog-Upload-URL", url),
                ("X-Goog-Upload-Control-URL", url),
                ("X-Goog-Upload-Chunk-Granularity", str(CHUNK_GRANULARITY)),
            ),
        )

    async def upload(
        self, req: Request, reader: BufferedByteReceiveStream, base_url: str
    ) -> tuple[Answer, StoredFile | None]:
        """A command on an upload session (the URL `start` answered): "upload"
        (streamed to disk), "finalize", "upload, finalize", "query" or "cancel";
        with the File once this request finalized it."""
        params = urllib.parse.parse_qs(req.query)
        session_id = (params.get("upload_id") or [""])[0]
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return error_reply(404, "No such upload session.", "NOT_FOUND"), None
        commands = {
            c.strip()
            for c in req.headers.get("x-goog-upload-command", "").lower().split(",")
        }
        if "cancel" in commands:
            with self._lock:
                self._sessions.pop(session.id, None)
            session.path.unlink(missing_ok=True)
            return _status_answer("cancelled"), None
        if session.file is not None:
            # finalized already: answer the File again, as the protocol's final state
            stored = self.get(session.file)
            if stored is None:
                return not_found_entity(), None
            return self._final(stored, base_url), None
        if "query" in commands:
            return _status_answer("active", session.received), None
        if "upload" in commands:
            offset = req.headers.get("x-goog-upload-offset", "")
            if offset.strip() != str(session.received):
                return _status_answer(
                    "active",
                    session.received,
                    status=400,
                    message=f"Offset {offset!r} does not match the "
                    f"{session.received} bytes received.",
                ), None
            try:
                async with await anyio.open_file(session.path, "ab") as file:
                    async for piece in body_pieces(reader, req):
                        await file.write(piece)
                        session.hasher.update(piece)
                        session.received += len(piece)
            except ValueError as exc:  # chunked framing gone wrong
                message = f"Malformed request body: {exc}."
                return error_reply(400, message, _INVALID), None
        if "finalize" not in commands:
            return _status_answer("active", session.received), None
        if session.declared is not None and session.declared != session.received:
            return _status_answer(
                "active",
                session.received,
                status=400,
                message=f"Finalized after {session.received} bytes; the upload "
                f"was started for {session.declared}.",
            ), None
        stored = StoredFile(
            name=session.name or f"files/{resource_id(12)}",
            path=session.path,
            size=session.received,
            mime_type=session.mime_type,
            display_name=session.display_name,
            create_ns=time.time_ns(),
            sha256=session.hasher.hexdigest(),
            generated=False,
        )
        with self._lock:
            self._files[stored.name] = stored
            session.file = stored.name
        return self._final(stored, base_url), stored

    def describe(self, file_id: str, base_url: str) -> Answer:
        """`GET /v1beta/files/ID`: the File resource."""
        stored = self.get(f"files/{file_id}")
        if stored is None:
            return not_found_entity()
        return json_reply(200, resource(stored, base_url))

    def delete(self, file_id: str) -> Answer:
        """`DELETE /v1beta/files/ID`: gone, with Google's empty answer."""
        with self._lock:
            stored = self._files.pop(f"files/{file_id}", None)
        if stored is None:
            return not_found_entity()
        stored.path.unlink(missing_ok=True)
        return json_reply(200, {})

    def download(self, req: Request, file_id: str) -> Answer:
        """`GET .../files/ID:download?alt=media`: the bytes of a generated file,
        streamed from disk. Uploaded files cannot be downloaded (google-genai's
        files.download says so; the server's wording here is unconfirmed)."""
        stored = self.get(f"files/{file_id}")
        if stored is None:
            return not_found_entity()
        if "media" not in urllib.parse.parse_qs(req.query).get("alt", []):
            return error_reply(400, "Downloads need alt=media.", _INVALID)
        if not stored.generated:
            return error_reply(
                400, "Only generated files can be downloaded.", "FAILED_PRECONDITION"
            )
        answer = Answer(200, b"", content_type=stored.mime_type)
        answer.streamed = Body((FileSlice(stored.path, stored.size),))
        return answer

    def _final(self, stored: StoredFile, base_url: str) -> Answer:
        answer = json_reply(200, {"file": resource(stored, base_url)})
        answer.headers = (("X-Goog-Upload-Status", "final"),)
        return answer


def resource(stored: StoredFile, base_url: str) -> dict[str, Any]:
    """The File resource of `stored`, fields in the order of ai.google.dev/api/files
    (File, JSON representation); sizeBytes is an int64, so a string."""
    file_id = stored.name.removeprefix("files/")
    body: dict[str, Any] = {"name": stored.name}
    if stored.display_name is not None:
        body["displayName"] = stored.display_name
    body |= {
        "mimeType": stored.mime_type,
        "sizeBytes": str(stored.size),
        "createTime": timestamp(stored.create_ns),
        "updateTime": timestamp(stored.create_ns),
        "expirationTime": timestamp(stored.create_ns + RETENTION_NS),
        # a bytes field, so base64; of the hex digest, as far as anyone has posted
        "sha256Hash": base64.b64encode(stored.sha256.encode()).decode(),
        "uri": f"{base_url}/v1beta/{stored.name}",
    }
    if stored.generated:
        body["downloadUri"] = (
            f"{base_url}/download/v1beta/files/{file_id}:download?alt=media"
        )
    body["state"] = "ACTIVE"
    body["source"] = "GENERATED" if stored.generated else "UPLOADED"
    return body


# -- private helpers --------------------------------------------------------------

_INVALID = "INVALID_ARGUMENT"


def _status_answer(
    state: str, received: int | None = None, *, status: int = 200, message: str = ""
) -> Answer:
    """An answer of the upload protocol carrying its X-Goog-Upload-Status."""
    headers = [("X-Goog-Upload-Status", state)]
    if received is not None:
        headers.append(("X-Goog-Upload-Size-Received", str(received)))
    if status == 200:
        answer = Answer(200, b"", content_type="text/plain; charset=utf-8")
    else:
        answer = error_reply(status, message, _INVALID)
    answer.headers = tuple(headers)
    return answer


def _either(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping[camel] if camel in mapping else mapping.get(snake)
