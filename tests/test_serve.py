"""The served gallery (`runner review JOB --serve`, SPEC 6): marking in a real
browser, the marks API, and the server's security.

Jobs run through the real CLI against the simulated API on loopback, into a real
SQLite store; the gallery is served the way `runner review --serve` serves it
(`runs.serving.served_gallery`, or the command itself in a child process) and
talked to over HTTP: raw `http.client` requests where a header or path must be
exactly as written, headless Chromium (Debian's `chromium`) for the page.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from benchmarks.review_bench import make_job
from runner import runs
from runner.runs.serving import served_gallery
from tests.e2e import SECRET, invoke, manifest, spawn, write_job
from tests.test_review import gallery_data, grounded_job, needs_chromium, opened

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from playwright.sync_api import Page

    from runner.review.serve import GalleryServer
    from runner.simulate import SimServer

JOB = """
    name: picks
    prompts:
      - {id: fox, text: "a red fox in snow"}
      - {id: lighthouse, text: "a lighthouse at dusk"}
      - {id: ramen, text: "a bowl of ramen"}
    aspect_ratios: ["1:1", "16:9"]
    image_sizes: ["1K"]
    generation: {temperature: 0.7, seed: 42}
"""


def submit(job: Path, sim: SimServer, out: Path) -> None:
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.fixture
def out(sim: SimServer, tmp_path: Path) -> Path:
    """The output folder of job `picks`, finished: six items, an image each."""
    out = tmp_path / "out"
    submit(write_job(tmp_path, JOB), sim, out)
    return out


@pytest.fixture
def server(out: Path) -> Iterator[GalleryServer]:
    with served_gallery("picks", workspace=runs.Workspace(out)) as (server, _):
        yield server


def images(out: Path, job: str = "picks") -> list[str]:
    """The job's images, as the manifest names them, in plan order."""
    return [image for row in manifest(out, job) for image in row["outputs"]]


def marks_of(out: Path, job: str = "picks") -> dict[str, dict[str, Any]]:
    """image -> its mark, as the manifest has them."""
    return {i: m for row in manifest(out, job) for i, m in row["marks"].items()}


class Answer:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def ask(
    server: GalleryServer,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    host: str | None = None,
) -> Answer:
    """One request, path and headers exactly as given (Host: the served one
    unless `host`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            method,
            path,
            body=body,
            headers={"Host": host or server.host, **(headers or {})},
        )
        response = conn.getresponse()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def change(
    server: GalleryServer,
    data: Mapping[str, Any],
    *,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST a change to the marks API the way the page does (its token, JSON,
    its own Origin), with `headers` on top."""
    return ask(
        server,
        "POST",
        "/api/marks",
        body=json.dumps(data).encode(),
        headers={
            "X-Runner-Token": server.token if token is None else token,
            "Content-Type": "application/json",
            "Origin": server.origin,
            **(headers or {}),
        },
    )


def api_get(server: GalleryServer, path: str) -> Answer:
    return ask(server, "GET", path, headers={"X-Runner-Token": server.token})


# -- the marks API -------------------------------------------------------------------


def test_a_change_is_in_the_store_and_manifest_at_once_and_survives_a_restart(
    out: Path,
) -> None:
    image = images(out)[0]
    workspace = runs.Workspace(out)
    with served_gallery("picks", workspace=workspace) as (server, _):
        answer = change(server, {"image": image, "mark": "star", "note": "keeper"})
        assert answer.status == 200
        assert answer.json() | {"updated_at": None} == {
            "image": image,
            "mark": "star",
            "note": "keeper",
            "updated_at": None,
        }
        # written at once, as `runner mark` writes it: the manifest says so already
        assert marks_of(out)[image]["mark"] == "star"
    with served_gallery("picks", workspace=workspace) as (server, _):
        marks = api_get(server, "/api/marks").json()
    assert marks["job"] == "picks"
    assert {i: (m["mark"], m["note"]) for i, m in marks["marks"].items()} == {
        image: ("star", "keeper")
    }


def test_a_field_left_out_is_kept_and_null_clears_it(server: GalleryServer, out: Path):
    image = images(out)[1]
    change(server, {"image": image, "mark": "reject", "note": "too dark"})
    change(server, {"image": image, "mark": None})  # unmark, note stays
    assert marks_of(out)[image] | {"updated_at": None} == {
        "mark": None,
        "note": "too dark",
        "updated_at": None,
    }
    change(server, {"image": image, "mark": "star"})
    change(server, {"image": image, "note": " "})  # an empty note is no note
    assert (marks_of(out)[image]["mark"], marks_of(out)[image]["note"]) == (
        "star",
        None,
    )
    change(server, {"image": image, "mark": None})
    assert image not in marks_of(out)


def test_a_change_it_cannot_make_says_why(server: GalleryServer, out: Path) -> None:
    image = images(out)[0]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"image": "images/nope.png", "mark": "star"}, 404, "not an image of job"),
        ({"image": image, "mark": "love"}, 400, "mark must be star, reject or null"),
        ({"image": image, "note": 7}, 400, "note must be text"),
        ({"mark": "star"}, 400, '"image"'),
    ]
    for data, status, message in cases:
        answer = change(server, data)
        assert (answer.status, message in answer.json()["error"]) == (status, True)
    assert marks_of(out) == {}


def test_the_compare_view_reads_how_each_image_was_made(
    server: GalleryServer, out: Path
) -> None:
    first, second = images(out)[:2]
    query = f"/api/images?image={quote(first)}&image={quote(second)}&image=x.png"
    found = api_get(server, query).json()["images"]
    assert set(found) == {first, second}
    card = found[second]
    assert card["prompt"] == "a red fox in snow"
    assert card["settings"]["aspect_ratio"] == "16:9"
    assert card["settings"]["image_size"] == "1K"
    assert card["settings"]["generation"] == {"temperature": 0.7, "seed": 42}
    assert card["sample"] == 1
    assert card["usage"]["totalTokenCount"] > 0


# -- security ------------------------------------------------------------------------


def test_it_listens_on_loopback_only(server: GalleryServer) -> None:
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/")
    assert server._httpd.socket.getsockname()[0] == "127.0.0.1"
    # every other address of this machine is refused
    try:
        found = socket.getaddrinfo(socket.gethostname(), server.port, socket.AF_INET)
    except OSError:
        found = []
    others = {str(info[4][0]) for info in found} - {"127.0.0.1"}
    others = {a for a in others if not a.startswith("127.")}
    for address in others:
        with (
            pytest.raises(OSError),
            socket.create_connection((address, server.port), 2),
        ):
            pass


def test_a_request_for_another_host_name_is_refused(server: GalleryServer) -> None:
    """DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1
    sends `Host: evil.example` to this port."""
    page = "/jobs/picks/"
    assert ask(server, "GET", page).status == 200
    for host in (
        "evil.example",
        f"evil.example:{server.port}",
        f"localhost:{server.port}",
        "127.0.0.1",
        f"127.0.0.1:{server.port + 1}",
    ):
        answer = ask(server, "GET", page, host=host)
        assert answer.status == 421, host
        assert b"RUNNER_SERVE" not in answer.body and server.token.encode() not in (
            answer.body
        )
        assert change(server, {"image": "x"}, headers={"Host": host}).status == 421
    # no Host at all
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("GET", page, skip_host=True)
    conn.endheaders()
    assert conn.getresponse().status == 421
    conn.close()


def test_a_write_without_the_pages_token_is_refused(
    server: GalleryServer, out: Path
) -> None:
    image = images(out)[0]
    star = {"image": image, "mark": "star"}
    assert change(server, star, token="").status == 403
    assert change(server, star, token=server.token[:-1] + "x").status == 403
    # what a cross-site form can send: no custom header, a form body
    form = ask(
        server,
        "POST",
        "/api/marks",
        body=b"image=x&mark=star",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://evil.example",
        },
    )
    assert form.status == 403
    # even with the token: another site's script, or a body that is not JSON
    assert (
        change(server, star, headers={"Origin": "https://evil.example"}).status == 403
    )
    assert change(server, star, headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert change(server, star, headers={"Content-Type": "text/plain"}).status == 415
    assert ask(server, "GET", "/api/marks").status == 403  # reads need it too
    assert marks_of(out) == {}
    assert change(server, star).status == 200


def test_the_token_is_only_in_the_served_page(server: GalleryServer, out: Path) -> None:
    served = ask(server, "GET", "/jobs/picks/")
    assert server.token.encode() in served.body
    assert served.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in served.headers["content-security-policy"]
    assert served.headers["cache-control"] == "no-store"
    on_disk = (out / "picks" / "index.html").read_text("utf-8")
    assert server.token not in on_disk and "RUNNER_SERVE =" not in on_disk
    assert "X-Runner-Token" not in on_disk
    # a second server, a second token
    with served_gallery("picks", workspace=runs.Workspace(out)) as (other, _):
        assert other.token != server.token and other.port != server.port


def test_files_come_only_from_the_job_folders_the_store_knows(
    sim: SimServer, tmp_path: Path, out: Path
) -> None:
    """The served job's folder and its parents' (a derived job's images show its
    parents'), nothing else: not the store, not another job, not a symlink out."""
    parent_image = images(out)[0]
    write_job(tmp_path, "name: other\nprompts: [an owl]\n", "other.yaml")
    submit(tmp_path / "other.yaml", sim, out)
    child = write_job(
        tmp_path,
        """
        name: night
        from: {job: picks, marked: succeeded}
        mode: edit
        prompts: ["the same at night"]
        """,
        "night.yaml",
    )
    submit(child, sim, out)
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (out / "night" / "images" / "link.png").symlink_to(secret)
    (out / "night" / "images" / "inside.png").symlink_to(out / "night" / "index.html")
    with served_gallery("night", workspace=runs.Workspace(out)) as (server, _):
        assert sorted(server.folders) == ["night", "picks"]
        child_image = images(out, "night")[0]
        for allowed in (
            f"/jobs/night/{child_image}",
            f"/jobs/picks/{parent_image}",
            "/jobs/picks/index.html",  # the parent's page, read-only
            "/jobs/night/images/inside.png",
        ):
            assert ask(server, "GET", quote(allowed)).status == 200, allowed
        parent_page = ask(server, "GET", "/jobs/picks/").body
        assert server.token.encode() not in parent_page
        refused = [
            "/jobs/other/index.html",  # in the store, but no parent of this job
            f"/jobs/other/{images(out, 'other')[0]}",
            "/jobs/night/../runner.db",
            "/jobs/night/%2e%2e/runner.db",
            "/jobs/night/images/..%2f..%2frunner.db",
            "/jobs/night/images/%2e%2e/%2e%2e/runner.db",
            "/jobs/..%2f/runner.db",
            "/jobs/%2e%2e/runner.db",
            "/jobs/night/images/link.png",  # a symlink out of the folder
            "/jobs/night/images/..\\..\\runner.db",
        ]
        for path in refused:
            answer = ask(server, "GET", path)
            assert answer.status == 403, path
            assert SECRET.encode() not in answer.body
            assert not answer.body.startswith(b"SQLite")
        for missing in ("/jobs/night/images/", "/jobs/night/nope.png", "/runner.db"):
            assert ask(server, "GET", missing).status == 404, missing


def test_the_api_key_is_never_served(
    server: GalleryServer, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set in the environment as it would be; no byte the server sends holds it."""
    for variable in ("TOKAIFY_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(variable, SECRET)
    every = images(out)
    change(server, {"image": every[0], "mark": "star", "note": "x"})
    answers = [
        ask(server, "GET", "/jobs/picks/"),
        ask(server, "GET", "/"),
        api_get(server, "/api/marks"),
        api_get(server, "/api/images?" + "&".join(f"image={quote(i)}" for i in every)),
        ask(server, "GET", "/jobs/picks/nope"),
    ]
    folder = out / "picks"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        answers.append(ask(server, "GET", quote(f"/jobs/picks/{rel}")))
    assert len(answers) > 20 and all(a.status < 500 for a in answers)
    for answer in answers:
        assert SECRET.encode() not in answer.body
        assert SECRET not in json.dumps(answer.headers)


# -- the command -------------------------------------------------------------------


def test_runner_review_serve_prints_the_url_and_ctrl_c_stops_it(out: Path) -> None:
    proc = spawn("review", "picks", "--serve", "--output", out)
    try:
        assert proc.popen.stdout is not None
        first = proc.popen.stdout.readline()
        url = first.split(" at ")[1].strip()
        assert first.startswith("serving the gallery of picks at http://127.0.0.1:")
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/jobs/picks/")
        page = conn.getresponse().read().decode()
        token = page.split('"token": "')[1].split('"')[0]
        body = json.dumps({"image": images(out)[2], "mark": "star"})
        conn.request(
            "POST",
            "/api/marks",
            body=body,
            headers={"X-Runner-Token": token, "Content-Type": "application/json"},
        )
        assert conn.getresponse().read()
        conn.close()
    finally:
        proc.popen.send_signal(signal.SIGINT)
    code, stdout, stderr = proc.finish(timeout=20)
    assert code == 0, stderr
    assert "stopped serving picks; 1 change(s) saved" in stderr
    assert "Traceback" not in stderr
    # the static gallery on disk was rebuilt to show it, read-only
    data = gallery_data(out / "picks")
    assert data["marks"] == {images(out)[2]: {"mark": "star", "note": None}}
    assert "RUNNER_SERVE =" not in (out / "picks" / "index.html").read_text("utf-8")


def test_sigterm_stops_it_as_ctrl_c_does_and_json_says_where_it_serves(
    out: Path,
) -> None:
    proc = spawn("review", "picks", "--serve", "--json", "--output", out)
    try:
        assert proc.popen.stdout is not None
        lines = [proc.popen.stdout.readline()]
        while lines[-1] not in ("}\n", ""):
            lines.append(proc.popen.stdout.readline())
        serving = json.loads("".join(lines))
        assert serving["job"] == "picks"
        assert serving["url"].startswith("http://127.0.0.1:")
        assert serving["folders"] == [str((out / "picks").resolve())]
    finally:
        proc.popen.send_signal(signal.SIGTERM)
    code, stdout, stderr = proc.finish(timeout=20)
    assert (code, stdout) == (0, "")
    assert "stopped serving picks; no mark changed" in stderr


def test_port_mistakes_are_usage_errors(out: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("review", "picks", "--serve", "--port", port, "--output", out)
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use; choose another --port" in result.output
    result = invoke("review", "picks", "--port", "8000", "--output", out)
    assert result.exit_code == 2
    assert "--port only applies with --serve" in result.output


# -- in a real browser ---------------------------------------------------------------


def ready(page: Page) -> None:
    """Wait until the page shows the store's marks and every change is saved."""
    page.wait_for_selector(
        "html[data-mk-ready='1'][data-mk-pending='0']", state="attached"
    )


def shown_marks(page: Page) -> list[str]:
    found: list[str] = page.eval_on_selector_all(
        "#list .cell[data-image]", "all => all.map(e => e.dataset.mk)"
    )
    return found


@needs_chromium
def test_marking_with_the_keyboard_is_kept_across_a_reload(out: Path) -> None:
    workspace = runs.Workspace(out)
    every = images(out)
    with (
        served_gallery("picks", workspace=workspace) as (server, _),
        opened(server.url) as page,
    ):
        ready(page)
        assert shown_marks(page) == ["none"] * 6
        keys = page.keyboard
        for key in "jsjsjsjx":  # star the first three, reject the fourth
            keys.press(key)
        keys.press("n")
        keys.type("too dark, but the framing works")
        keys.press("Enter")
        ready(page)
        assert {i: m["mark"] for i, m in marks_of(out).items()} == {
            every[0]: "star",
            every[1]: "star",
            every[2]: "star",
            every[3]: "reject",
        }
        assert marks_of(out)[every[3]]["note"] == "too dark, but the framing works"

        page.reload()
        ready(page)
        assert shown_marks(page) == ["star"] * 3 + ["reject", "none", "none"]
        fourth = page.locator(f"#list .cell[data-image='{every[3]}']")
        assert fourth.locator(".mkn").input_value() == "too dark, but the framing works"
        assert fourth.locator(".mkb[data-set=reject]").get_attribute(
            "aria-pressed"
        ) == ("true")
        # the filter by mark: starred only
        chip = page.locator(
            "#filters label.chip", has=page.locator("input[value=star]")
        )
        assert chip.inner_text() == "★ starred 3"
        page.evaluate("() => window.scrollTo(0, 0)")  # a reload keeps the scroll
        chip.dblclick()
        assert page.locator("#list .cell[data-image]:not(.off)").count() == 3
        # k and j walk only the images the filter shows; x on one rejects it
        keys.press("j")
        keys.press("j")
        keys.press("x")
        ready(page)
        assert marks_of(out)[every[1]]["mark"] == "reject"
        assert page.locator("#list .cell[data-image]:not(.off)").count() == 2
        page.locator("#reset").click()
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path="/tmp/served-gallery.png", full_page=True)

    # the page on disk (rebuilt when the server stopped) shows them, read-only
    with opened(out / "picks" / "index.html") as static:
        assert static.locator(".mark.m-star").count() == 2
        assert static.locator(".mark.m-reject").count() == 2
        assert static.locator(".mnote").all_inner_texts() == [
            "too dark, but the framing works"
        ]
        assert static.locator(".mk, .mkb, .mkn").count() == 0
        assert static.evaluate("() => window.RUNNER_SERVE") is None


@needs_chromium
@pytest.mark.timeout(90)
def test_a_large_gallery_marks_rows_drawn_later_and_filters_by_mark_at_once(
    tmp_path: Path,
) -> None:
    """600 items: the page draws a screenful of rows at a time. A mark shows on a
    cell drawn after scrolling, j walks to an image whose row was never drawn,
    and the filter by mark follows each change."""
    store, job, _, _ = make_job(tmp_path, 600, 0.02, 7)
    every = [image for item in store.images_of(job) for image in item.outputs]
    store.close()
    out = tmp_path / "output"
    first, last = every[0], every[-1]
    with (
        served_gallery("bench", workspace=runs.Workspace(out)) as (server, _),
        opened(server.url) as page,
    ):
        # marked elsewhere (another page, `runner mark`) before this page loaded
        assert change(server, {"image": last, "mark": "star"}).status == 200
        page.reload()
        ready(page)
        cell = "#list .cell[data-image='{}']"
        assert page.locator(cell.format(last)).count() == 0  # not drawn yet
        keys = page.keyboard
        keys.press("j")
        keys.press("s")
        ready(page)
        assert page.locator(cell.format(first)).get_attribute("data-mk") == "star"
        chip = page.locator(
            "#filters label.chip", has=page.locator("input[value=star]")
        )
        assert chip.inner_text() == "★ starred 2"
        chip.dblclick()
        assert page.locator("#shown").inner_text() == "2"
        keys.press("j")  # to the last image: its row is drawn and scrolled to
        far = page.locator(cell.format(last))
        assert "mkcur" in (far.get_attribute("class") or "").split()
        assert far.get_attribute("data-mk") == "star"
        assert (
            far.locator(".mkb[data-set=star]").get_attribute("aria-pressed") == "true"
        )
        box = far.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 1000
        keys.press("x")  # rejected: the starred-only filter drops it at once
        assert page.locator("#shown").inner_text() == "1"
        assert chip.inner_text() == "★ starred 1"
        ready(page)
        page.locator("#reset").click()
        # every row again; the far one is drawn anew when scrolled to
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_selector(cell.format(last))
        assert page.locator(cell.format(last)).get_attribute("data-mk") == "reject"
        assert page.locator(cell.format(first)).count() == 0
        page.evaluate("() => window.scrollTo(0, 0)")
        page.wait_for_selector(cell.format(first))
        top = page.locator(cell.format(first))
        assert "m-star" in (top.get_attribute("class") or "")
        assert (
            top.locator(".mkb[data-set=star]").get_attribute("aria-pressed") == "true"
        )
    assert {i: m["mark"] for i, m in marks_of(out, "bench").items()} == {
        first: "star",
        last: "reject",
    }


@needs_chromium
def test_compare_two_to_four_chosen_images_with_their_settings(
    server: GalleryServer, out: Path
) -> None:
    every = images(out)
    with opened(server.url) as page:
        ready(page)
        keys = page.keyboard
        for key in "jcjjcjcjc":  # images 1, 3, 4 and 5
            keys.press(key)
        keys.press("v")
        cards = page.locator("#mkcmp .mkcard")
        assert cards.count() == 4
        assert [cards.nth(i).get_attribute("data-image") for i in range(4)] == [
            every[0],
            every[2],
            every[3],
            every[4],
        ]
        page.wait_for_selector("#mkcmp .mkcard .mkset dd")
        terms = cards.first.locator(".mkset dt").all_inner_texts()
        values = cards.first.locator(".mkset dd").all_inner_texts()
        settings = dict(zip(terms, values, strict=True))
        assert settings["prompt"] == "a red fox in snow"
        assert settings["ratio"] == "1:1" and settings["size"] == "1K"
        assert settings["references"] == "none"
        assert settings["sample"] == "1 · seed 42"
        assert settings["generation"] == "temperature 0.7"
        assert "tokens" in settings["usage"]
        # keys work here too: the last chosen is in focus, k goes one back
        keys.press("k")
        keys.press("s")
        ready(page)
        assert marks_of(out)[every[3]]["mark"] == "star"
        page.screenshot(path="/tmp/served-compare.png")
        keys.press("Escape")
        assert not page.locator("#mkcmp").is_visible()
        # a fifth is refused (the sixth image: the fifth is chosen)
        keys.press("j")
        keys.press("j")
        keys.press("c")
        assert "holds 4 images" in page.locator("#mkmsg").inner_text()
        assert page.locator("#list .cell.mkpicked").count() == 4
        keys.press("Escape")  # clears the choice
        assert page.locator("#list .cell.mkpicked").count() == 0


@needs_chromium
def test_a_grounded_images_search_suggestions_show_when_served(tmp_path: Path) -> None:
    """The served page's Content-Security-Policy still lets the suggestions' frame
    show, as Google's terms for grounding ask."""
    store, _, _ = grounded_job(tmp_path)
    store.close()
    workspace = runs.Workspace(tmp_path / "out")
    with (
        served_gallery("grounded", workspace=workspace) as (server, _),
        opened(server.url) as page,
    ):
        ready(page)
        page.locator("iframe.gs").scroll_into_view_if_needed()
        chip = page.frame_locator("iframe.gs").locator("a.chip")
        assert chip.inner_text() == "tram 28 lisbon"
        assert chip.is_visible()
