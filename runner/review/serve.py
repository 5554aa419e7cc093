"""The served gallery (`runner review JOB --serve`, SPEC 6): a job's folder over
HTTP on loopback, and the marks API its page's controls call.

Owns: the HTTP server (the standard library's ThreadingHTTPServer: a page, its
files and three JSON routes need no framework or dependency), who may ask what,
which files may be served, and the served page: the job's index.html with the
token, serve.css and serve.js added on the way out (the file on disk stays the
read-only page). Checked on every request:

    the socket is bound to 127.0.0.1 only;
    Host must be exactly 127.0.0.1:PORT (a DNS-rebinding page sends its own name);
    /api/ needs the header X-Runner-Token holding this server's random token,
    which only its pages carry (compared in constant time); a write also needs a
    JSON body and no other Origin, so a cross-site form or script marks nothing;
    files only from the job folders it was given (the job's, its parents' and
    children's): no `..`, no symlink out, no listing; no page may frame these pages.

Writes nothing itself: a change goes to the `MarkBook` its caller hands in (the
runs layer writes it as `runner mark` does). Must not read the API key.
"""

from __future__ import annotations

import functools
import hmac
import json
import mimetypes
import secrets
import shutil
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

from runner.errors import RunnerError
from runner.review.page import INDEX
from runner.store import KEEP, MARKS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner.store import Keep

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Runner-Token"
API = "/api"
MAX_BODY = 64 * 1024  # bytes of a POST body: a mark and a note
MAX_NOTE = 2000  # characters of a note
MAX_DESCRIBED = 8  # images one /api/images request may ask for (compare shows 4)
# The page is inline script and style (it works from file://); it may load only
# its own files, talk only to this server, and be framed by nothing (a framed page
# could be clicked through by the page framing it).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # another site's <img> or <script> may not load these files either
    "Cross-Origin-Resource-Policy": "same-origin",
}


class MarkBook(Protocol):
    """What the server reads and changes of the served job's marks."""

    @property
    def job(self) -> str: ...

    def marks(self) -> dict[str, dict[str, Any]]:
        """image -> {mark, note, updated_at} for the job's marked images."""
        ...

    def change(
        self, image: str, mark: str | None | Keep, note: str | None | Keep
    ) -> dict[str, Any]:
        """Set (None: clear, KEEP: keep) one image's mark and note, written at
        once; {image, mark, note, updated_at} now. KeyError: no such image."""
        ...

    def describe(self, images: Sequence[str]) -> dict[str, dict[str, Any]]:
        """image -> how it was made (prompt, settings, usage, mark, lineage), for
        the images of the job among `images`."""
        ...


class ApiError(Exception):
    """A request the API refuses: its HTTP status and why, in one line."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GalleryServer:
    """The served gallery of `book.job`, files from `folders` (job name -> folder,
    the served job's first), on 127.0.0.1:`port` (0: a free port). OSError if the
    port cannot be had. Serves from a thread of its own once started."""

    def __init__(
        self, book: MarkBook, folders: Mapping[str, Path], *, port: int = 0
    ) -> None:
        self.book = book
        self.job = book.job
        self.folders = {name: folder.resolve() for name, folder in folders.items()}
        self.token = secrets.token_urlsafe(32)
        self._httpd = _HTTPServer((HOST, port), _Handler, self)
        self.port = int(self._httpd.server_address[1])
        self.host = f"{HOST}:{self.port}"
        self.origin = f"http://{self.host}"
        self.url = f"{self.origin}{job_path(self.job)}"
        self._thread: threading.Thread | None = None

    def start(self) -> GalleryServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="gallery-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and free the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> GalleryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def page(self) -> bytes:
        """The job's index.html as served: with the token and the controls."""
        text = (self.folders[self.job] / INDEX).read_text("utf-8")
        config = json.dumps({"api": API, "token": self.token, "job": self.job})
        config = config.replace("<", "\\u003c")  # nothing in it may end the script
        # In <head>, before the page's script: gallery.js knows it is served (it
        # then shows the filter by mark from the start). An icon of its own: no
        # request for /favicon.ico.
        head = (
            f"<link rel=icon href='data:,'>\n<style>\n{_asset('serve.css')}</style>\n"
            f"<script>window.RUNNER_SERVE = {config};</script>\n"
        )
        # after the page's script: it hooks into window.RUNNER_VIEW
        script = f"<script>\n{_asset('serve.js')}</script>\n"
        return (_before(_before(text, "</head>", head), "</body>", script)).encode()


def job_path(job: str) -> str:
    """The URL path of a job folder on the server (the page is its index)."""
    return f"/jobs/{quote(job)}/"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # One address, one server: never share the port with another process.
    allow_reuse_address = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        app: GalleryServer,
    ) -> None:
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that goes away mid-answer (a page left while images load) is
        no error worth a traceback on the terminal."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "runner"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the command says where it serves, not every request."""

    def _handle(self, method: str) -> None:
        app = self.server.app
        try:
            self._refuse_foreign_host(app)
            path = urlsplit(self.path).path
            if path == API or path.startswith(API + "/"):
                self._api(app, method, path)
            elif method not in ("GET", "HEAD"):
                raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "only GET here")
            elif path == "/":
                self._send(HTTPStatus.FOUND, b"", {"Location": job_path(app.job)})
            else:
                self._file(app, path, head=method == "HEAD")
        except ApiError as exc:
            self.close_connection = True
            self._json(exc.status, {"error": exc.message})
        except RunnerError as exc:  # the store could not be read: say why
            self.close_connection = True
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": exc.message})

    def _refuse_foreign_host(self, app: GalleryServer) -> None:
        """DNS rebinding: a page on another name that resolves to 127.0.0.1 talks
        to this port with its own name as Host."""
        if self.headers.get_all("Host") != [app.host]:
            raise ApiError(
                HTTPStatus.MISDIRECTED_REQUEST,
                f"this server answers only to {app.host}; open {app.url}",
            )

    # -- the API ----------------------------------------------------------------------

    def _api(self, app: GalleryServer, method: str, path: str) -> None:
        given = self.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, app.token.encode()):
            raise ApiError(
                HTTPStatus.FORBIDDEN,
                f"missing or wrong {TOKEN_HEADER}: use the page this server serves",
            )
        route = path[len(API) :]
        if route == "/marks" and method == "GET":
            self._json(HTTPStatus.OK, {"job": app.job, "marks": app.book.marks()})
        elif route == "/marks" and method == "POST":
            self._change(app)
        elif route == "/images" and method == "GET":
            query = parse_qs(urlsplit(self.path).query)
            images = query.get("image", [])[:MAX_DESCRIBED]
            self._json(HTTPStatus.OK, {"images": app.book.describe(images)})
        elif route in ("/marks", "/images"):
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: no")
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no API route {path}")

    def _change(self, app: GalleryServer) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and origin != app.origin:
            raise ApiError(HTTPStatus.FORBIDDEN, f"writes from {origin} are refused")
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in (
            "same-origin",
            "none",
        ):
            raise ApiError(HTTPStatus.FORBIDDEN, "cross-site writes are refused")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the change as application/json"
            )
        image, mark, note = _parse_change(self._body())
        try:
            changed = app.book.change(image, mark, note)
        except KeyError:
            raise ApiError(
                HTTPStatus.NOT_FOUND, f"{image!r} is not an image of job {app.job}"
            ) from None
        self._json(HTTPStatus.OK, changed)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "no Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        return self.rfile.read(length)

    # -- files ------------------------------------------------------------------------

    def _file(self, app: GalleryServer, path: str, *, head: bool) -> None:
        parts = path.split("/")  # "", "jobs", job, rest...
        if len(parts) == 3 and parts[1] == "jobs":  # a folder without its slash
            self._send(HTTPStatus.MOVED_PERMANENTLY, b"", {"Location": path + "/"})
            return
        if len(parts) < 4 or parts[1] != "jobs":
            raise ApiError(HTTPStatus.NOT_FOUND, f"nothing at {path}")
        job, rest = unquote(parts[2]), [unquote(p) for p in parts[3:]]
        folder = app.folders.get(job)
        if folder is None:
            raise ApiError(
                HTTPStatus.FORBIDDEN,
                f"{job!r} is not a job folder this server serves",
            )
        if any(p in (".", "..") or {"/", "\\", "\0"} & set(p) for p in rest):
            raise ApiError(HTTPStatus.FORBIDDEN, f"{path} leaves the job folder")
        names = [p for p in rest if p]
        if rest[-1] == "":  # a folder: its index page, never a listing
            names.append(INDEX)
        try:
            found = folder.joinpath(*names).resolve(strict=True)
        except OSError:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no file {path}") from None
        if not found.is_relative_to(folder):
            raise ApiError(HTTPStatus.FORBIDDEN, f"{path} leaves the job folder")
        if not found.is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no file {path}")
        if job == app.job and found == folder / INDEX:
            self._send(HTTPStatus.OK, app.page(), _PAGE, head=head)
            return
        kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        with found.open("rb") as handle:
            size = found.stat().st_size
            self._head(HTTPStatus.OK, size, {"Content-Type": kind, **_CACHE_FILE})
            if not head:
                shutil.copyfileobj(handle, self.wfile)

    # -- responses --------------------------------------------------------------------

    def _json(self, status: HTTPStatus, data: object) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        self._send(status, body, {"Content-Type": "application/json; charset=utf-8"})

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        headers: Mapping[str, str],
        *,
        head: bool = False,
    ) -> None:
        self._head(status, len(body), {"Cache-Control": "no-store", **headers})
        if not head:
            self.wfile.write(body)

    def _head(self, status: HTTPStatus, size: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**_HEADERS, **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(size))
        self.end_headers()


_PAGE = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": PAGE_POLICY,
}
_CACHE_FILE = {"Cache-Control": "no-cache"}  # a rerun may replace an image


def _parse_change(body: bytes) -> tuple[str, str | None | Keep, str | None | Keep]:
    """(image, mark, note) of a change {image, mark?, note?}: a field left out is
    kept as it is; a null mark clears the mark, an empty or null note the note."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("image"), str):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, 'send {"image": PATH, "mark": ..., "note": ...}'
        )
    mark: str | None | Keep = KEEP
    if "mark" in data:
        mark = data["mark"]
        if mark is not None and mark not in MARKS:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                f"mark must be {', '.join(MARKS)} or null, not {mark!r}",
            )
    note: str | None | Keep = KEEP
    if "note" in data:
        note = data["note"]
        if note is not None and not isinstance(note, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, "note must be text or null")
        if note is not None and len(note) > MAX_NOTE:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"a note holds {MAX_NOTE:,} chars")
        note = (note or "").strip() or None
    return data["image"], mark, note


def _before(text: str, tag: str, insert: str) -> str:
    """`insert` before the last `tag` of `text` (at the end if it has none)."""
    at = text.rfind(tag)
    return text + insert if at < 0 else text[:at] + insert + text[at:]


@functools.cache
def _asset(name: str) -> str:
    return resources.files("runner.review").joinpath(name).read_text("utf-8")
