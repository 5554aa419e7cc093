"""Lineage in the gallery and in exports (SPEC 6): a derived item shows and links
its parent image; a parent image lists and links its children in other jobs.

The real CLI against the simulated API on loopback, a real SQLite store; the pages
opened from file:// and served (`runner review --serve`) in headless Chromium.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest

from runner import runs
from runner.runs.serving import served_gallery
from tests.e2e import SECRET, invoke, manifest, write_job
from tests.test_review import gallery_data, needs_chromium, opened

if TYPE_CHECKING:
    from playwright.sync_api import Locator

    from runner.simulate import SimServer

PARENT = """
    name: banners
    prompts:
      - {id: harbour, text: "a harbour at dusk"}
      - {id: forest, text: "a forest path"}
    aspect_ratios: ["16:9", "1:1"]
"""
CHILD = """
    name: night
    from: {job: banners, marked: star}
    mode: edit
    prompts: ["The same scene at night, {light}"]
    vars: {light: [neon signs, moonlight]}
    aspect_ratios: [parent]
"""
PLAIN = """
    name: plain
    prompts: ["an owl"]
"""


class Jobs:
    """Three jobs in one output folder: `banners`, two of whose images are
    starred; `night`, an edit of each star (two lights each); `plain`, unrelated."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def rows(self, job: str) -> list[dict[str, Any]]:
        return manifest(self.out, job)

    @property
    def starred(self) -> list[str]:
        return [i for r in self.rows("banners") for i in r["outputs"]][::3][:2]


def run(*args: str | Path) -> None:
    result = invoke(*args, env={"TOKAIFY_API_KEY": SECRET})
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def jobs(sim_server: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    folder = tmp_path_factory.mktemp("lineage")
    out = folder / "out"
    found = Jobs(out)
    base = ("--base-url", sim_server.url, "--output", out)
    run("submit", write_job(folder, PARENT, "banners.yaml"), *base)
    run("mark", "banners", *found.starred, "--star", "--output", out)
    run("submit", write_job(folder, CHILD, "night.yaml"), *base)
    run("submit", write_job(folder, PLAIN, "plain.yaml"), *base)
    # the parent's gallery, built again now that it has children
    run("review", "banners", "--output", out)
    return found


# -- the data ------------------------------------------------------------------------


def test_a_derived_items_parent_is_in_its_gallerys_data(jobs: Jobs) -> None:
    data = gallery_data(jobs.out / "night")
    lineage = data["lineage"]
    assert lineage["jobs"] == ["banners"] and lineage["modes"] == ["edit"]
    assert lineage["children"] == {}
    parent = lineage["parent"]
    assert parent["mode"] is None  # every item is an edit: no column
    recorded = [row["parent"] for row in jobs.rows("night")]
    assert [
        {"job": lineage["jobs"][j], "image": parent["image_dir"] + image}
        for j, image in zip(parent["job"], parent["image"], strict=True)
    ] == [{"job": p["job"], "image": p["image"]} for p in recorded]
    assert sorted({p["image"] for p in recorded}) == sorted(jobs.starred)
    # the parents are one more axis: each star a row of its two lights, no
    # duplicate cells, no holes for the ratio each parent keeps
    axes = {axis["key"]: axis for axis in data["axes"]}
    assert sorted(axes["parent"]["values"]) == sorted(
        Path(image).stem for image in jobs.starred
    )
    assert data["prompts"]["dups"] == {}
    assert -1 not in data["prompts"]["cells"][0]
    # a parent sent as a reference is no file of a reference set: no legend
    assert data["references"] == {}


def test_a_parents_children_in_other_jobs_are_in_its_gallerys_data(
    jobs: Jobs,
) -> None:
    lineage = gallery_data(jobs.out / "banners")["lineage"]
    assert lineage["parent"] is None  # derived from nothing: no column
    children: dict[str, list[list[Any]]] = lineage["children"]
    assert sorted(children) == sorted(jobs.starred)
    for image, kids in children.items():
        made = [r for r in jobs.rows("night") if r["parent"]["image"] == image]
        assert [
            (lineage["jobs"][j], lineage["modes"][m], child) for j, m, child in kids
        ] == [("night", "edit", r["outputs"][0]) for r in made]
        assert len(kids) == 2


def test_a_gallery_without_lineage_adds_nothing(jobs: Jobs) -> None:
    assert gallery_data(jobs.out / "plain")["lineage"] is None


def test_an_exported_images_sidecar_names_its_parent(jobs: Jobs) -> None:
    dest = jobs.out.parent / "picked"
    run("export", "night", dest, "--output", jobs.out)
    rows = {r["outputs"][0]: r for r in jobs.rows("night")}
    assert len(rows) == 4
    for image, row in rows.items():
        card = json.loads((dest / (Path(image).name + ".json")).read_text("utf-8"))
        assert card["lineage"] == {
            "job": "banners",
            "key": row["parent"]["key"],
            "image": row["parent"]["image"],
            "mode": "edit",
        }
        parent_rows = {r["key"]: r for r in jobs.rows("banners")}
        assert (
            card["lineage"]["image"] in parent_rows[card["lineage"]["key"]]["outputs"]
        )


# -- in a browser --------------------------------------------------------------------


def links(where: Locator) -> list[str]:
    """The resolved URLs of these links, in page order."""
    found: list[str] = where.evaluate_all("all => all.map(a => a.href)")
    return found


def words(where: Locator) -> str:
    return " ".join(where.inner_text().split())


def as_file(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


@needs_chromium
def test_a_child_links_its_parent_and_a_parent_its_children_from_file(
    jobs: Jobs,
) -> None:
    out = jobs.out
    with opened(out / "night" / "index.html") as page:
        cells = page.locator("#list .cell")
        assert cells.count() == 4
        for n in range(4):
            cell = cells.nth(n)
            row = next(
                r
                for r in jobs.rows("night")
                if r["outputs"][0] == cell.get_attribute("data-image")
            )
            up = cell.locator(".lin.up")
            assert words(up.locator(".lk")) == "edit of banners"
            (url,) = links(up.locator("a"))
            assert as_file(url) == (out / "banners" / row["parent"]["image"])
            assert as_file(url).is_file()
            # the parent's thumbnail, from its own gallery's folder
            assert up.locator("img").evaluate("i => i.complete && i.naturalWidth") > 0
    with opened(out / "banners" / "index.html") as page:
        for image in jobs.starred:
            cell = page.locator(f"#list .cell[data-image='{image}']")
            down = cell.locator(".lin.down")
            assert words(down) == "children in night (edit): 1 2"
            targets = [as_file(u) for u in links(down.locator("a"))]
            made = [
                out / "night" / r["outputs"][0]
                for r in jobs.rows("night")
                if r["parent"]["image"] == image
            ]
            assert targets == [out / "night" / "index.html", *made]
            assert all(t.is_file() for t in targets)
        # an image nothing derives from lists nothing
        assert page.locator("#list .cell .lin").count() == 2


@needs_chromium
def test_lineage_links_work_in_the_served_gallery(jobs: Jobs) -> None:
    """The served pages serve their relatives' folders: a child's parent, a
    parent's children."""
    fetch = "urls => Promise.all(urls.map(u => fetch(u).then(r => r.status)))"
    workspace = runs.Workspace(jobs.out)
    with (
        served_gallery("night", workspace=workspace) as (server, _),
        opened(server.url) as page,
    ):
        assert sorted(server.folders) == ["banners", "night"]
        up = links(page.locator("#list .cell .lin.up a"))
        assert len(up) == 4 and all("/jobs/banners/images/" in u for u in up)
        assert page.evaluate(fetch, up) == [200] * 4
    with (
        served_gallery("banners", workspace=workspace) as (server, _),
        opened(server.url) as page,
    ):
        assert sorted(server.folders) == ["banners", "night"]
        down = links(page.locator("#list .cell .lin.down a"))
        assert len(down) == 2 * 3 and all("/jobs/night/" in u for u in down)
        assert page.evaluate(fetch, down) == [200] * 6
