"""Marks on images and `runner export` (SPEC 6): `runner mark` by file name or item
key prefix, notes, marks across resubmit, retry, rm and prune, the manifest,
`status --json` and the gallery's model, the export's copies and sidecars, and the
schema step that adds marks to an older store. The real CLI, the simulated API on
loopback and real SQLite files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from runner.errors import UsageError
from runner.review.grid import build_entries, mark_counts
from runner.runs.marking import resolve_names
from runner.simulate import SimServer
from runner.store import ItemImages, Store
from runner.store.reader import StoreReader, Unreadable
from tests.e2e import SECRET, invoke, manifest, status_json, write_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    from click.testing import Result

STORE_M001 = Path(__file__).parent / "data" / "store-m001"
JOB = """
    name: picks
    prompts: ["a red fox in snow", "a lighthouse at dusk", "a bowl of ramen"]
    aspect_ratios: ["1:1", "16:9"]
    image_sizes: ["1K"]
    concurrency: 3
"""


@pytest.fixture(scope="module")
def two_image_sim() -> Iterator[SimServer]:
    """A simulated API whose answers hold two images each."""
    with SimServer(image_scale=0.0625, images_per_answer=2) as server:
        yield server


def submit(job: Path, sim: SimServer, out: Path) -> Result:
    """`runner submit` against `sim` standing for the real API."""
    return invoke(
        "submit", job, "--base-url", sim.url, "--output", out, "--no-review",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip


def mark(out: Path, *args: str) -> Result:
    return invoke("mark", "picks", *args, "--output", out)


def marks_of(out: Path, job: str = "picks") -> dict[str, dict[str, Any]]:
    """image -> its mark, as the manifest has them."""
    return {
        image: mark
        for row in manifest(out, job)
        for image, mark in row["marks"].items()
    }


def name(image: str) -> str:
    return Path(image).name


@pytest.fixture
def picks(sim: SimServer, tmp_path: Path) -> Path:
    """The output folder of job `picks`: six items, one image each, all succeeded."""
    out = tmp_path / "out"
    result = submit(write_job(tmp_path, JOB), sim, out)
    assert result.exit_code == 0, result.output
    return out


def job_file(out: Path) -> Path:
    """The job file `picks` was submitted from."""
    return out.parent / "job.yaml"


def images(out: Path, job: str = "picks") -> list[str]:
    return [image for row in manifest(out, job) for image in row["outputs"]]


# -- runner mark -----------------------------------------------------------------------


def test_an_image_is_starred_by_its_file_name_and_the_manifest_and_status_say_so(
    picks: Path,
) -> None:
    first, second, *_ = images(picks)
    result = mark(picks, name(first), "--star")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "picks: starred 1 image(s)",
        f"  star   {first}",
    ]
    # a path to the file and the name without its extension name it too
    path = str(picks / "picks" / second)
    rejected = mark(picks, path, Path(second).stem, "--reject", "--json")
    assert rejected.exit_code == 0, rejected.output
    data = json.loads(rejected.stdout)
    assert [(i["image"], i["mark"]) for i in data["images"]] == [(second, "reject")]
    assert data["change"] == "reject"
    marks = marks_of(picks)
    assert {image: m["mark"] for image, m in marks.items()} == {
        first: "star",
        second: "reject",
    }
    assert all(m["note"] is None and m["updated_at"] for m in marks.values())
    assert status_json("picks", picks)["marks"] == {"star": 1, "reject": 1, "noted": 0}
    assert "marks: 1 starred, 1 rejected, 0 with a note" in (
        invoke("status", "picks", "--output", picks).output
    )


def test_an_item_key_prefix_names_all_of_that_items_images(
    two_image_sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert submit(write_job(tmp_path, JOB), two_image_sim, out).exit_code == 0
    row = manifest(out, "picks")[2]
    assert len(row["outputs"]) == 2
    result = mark(out, row["key"][:10], "--star", "--note", "both good")
    assert result.exit_code == 0, result.output
    assert "picks: starred 2 image(s)" in result.output
    assert marks_of(out) == {
        image: {"mark": "star", "note": "both good", "updated_at": mark["updated_at"]}
        for image, mark in row_marks(out, row["key"]).items()
    }
    assert set(row_marks(out, row["key"])) == set(row["outputs"])
    status = status_json("picks", out)
    assert status["marks"] == {"star": 2, "reject": 0, "noted": 2}


def row_marks(out: Path, key: str) -> dict[str, Any]:
    (row,) = [r for r in manifest(out, "picks") if r["key"] == key]
    marks: dict[str, Any] = row["marks"]
    return marks


def test_a_note_alone_keeps_the_mark_and_clear_removes_mark_and_note(
    picks: Path,
) -> None:
    image = images(picks)[0]
    assert mark(picks, name(image), "--star").exit_code == 0
    noted = mark(picks, name(image), "--note", "warmer light")
    assert noted.exit_code == 0, noted.output
    assert noted.output.splitlines()[0] == "picks: noted 1 image(s)"
    assert marks_of(picks)[image]["mark"] == "star"
    assert marks_of(picks)[image]["note"] == "warmer light"
    # an empty note removes the note, not the mark
    assert mark(picks, name(image), "--note", "").exit_code == 0
    assert marks_of(picks)[image]["note"] is None
    assert marks_of(picks)[image]["mark"] == "star"
    assert mark(picks, name(image), "--reject", "--note", "too dark").exit_code == 0
    assert marks_of(picks)[image]["mark"] == "reject"
    cleared = mark(picks, name(image), "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert cleared.output.splitlines() == [
        "picks: cleared 1 image(s)",
        f"  -      {image}",
    ]
    assert marks_of(picks) == {}
    with closing(sqlite3.connect(picks / "runner.db")) as db:
        assert db.execute("SELECT count(*) FROM marks").fetchone() == (0,)
    # --clear with --note: no mark, the note kept
    assert mark(picks, name(image), "--star").exit_code == 0
    assert mark(picks, name(image), "--clear", "--note", "maybe").exit_code == 0
    assert marks_of(picks)[image]["mark"] is None
    assert marks_of(picks)[image]["note"] == "maybe"
    assert status_json("picks", picks)["marks"] == {"star": 0, "reject": 0, "noted": 1}


def test_unknown_and_ambiguous_names_are_all_reported_and_nothing_is_marked(
    picks: Path,
) -> None:
    first = images(picks)[0]
    typo = name(first).replace("_s1_", "_s2_")
    result = mark(picks, name(first), typo, "nonsense", "--star")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == (
        f"error: '{typo}' names no image of job picks (neither an image's file name "
        f"nor the start of the key of an item with images); did you mean "
        f"{name(first)}?"
    )
    assert lines[1].startswith("error: 'nonsense' names no image of job picks")
    assert "Traceback" not in result.output
    assert marks_of(picks) == {}  # the one good name was not marked either


def test_a_key_prefix_of_several_items_names_the_candidates() -> None:
    found = [
        ItemImages(1, "ab12" + "0" * 60, ("images/fox_1x1_noref_s1_ab120000.png",)),
        ItemImages(2, "ab34" + "0" * 60, ("images/sea_1x1_noref_s1_ab340000.png",)),
        ItemImages(3, "cd56" + "0" * 60, ("images/owl_1x1_noref_s1_cd560000.png",)),
    ]
    with pytest.raises(UsageError) as caught:
        resolve_names(["ab"], found, "picks")
    assert caught.value.message == (
        "'ab' starts the keys of 2 items: ab1200000000 (fox_1x1_noref_s1_ab120000.png)"
        ", ab3400000000 (sea_1x1_noref_s1_ab340000.png); type more of the key, or "
        "the image's file name"
    )
    # a longer prefix, a key in capitals, the same image twice: each image once
    assert resolve_names(["AB3", "sea_1x1_noref_s1_ab340000.png"], found, "p") == [
        (2, "images/sea_1x1_noref_s1_ab340000.png")
    ]


def test_mark_needs_one_change(picks: Path) -> None:
    image = name(images(picks)[0])
    both = mark(picks, image, "--star", "--reject")
    assert both.exit_code == 2
    assert "error: --star and --reject contradict each other" in both.output
    nothing = mark(picks, image)
    assert nothing.exit_code == 2
    assert "--star, --reject, --clear or --note TEXT" in nothing.output
    unknown_job = invoke("mark", "nope", image, "--star", "--output", picks)
    assert unknown_job.exit_code == 2 and "no job named 'nope'" in unknown_job.output


# -- marks over a job's life -----------------------------------------------------------


def test_marks_survive_a_resubmit_and_a_retry(sim: SimServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB.replace("a bowl of ramen", "refused [sim:400*1]"))
    assert submit(job, sim, out).exit_code == 1  # two items refused once
    done = [r for r in manifest(out, "picks") if r["outputs"]]
    starred, rejected = done[0]["outputs"][0], done[1]["outputs"][0]
    assert mark(out, name(starred), "--star", "--note", "keep").exit_code == 0
    assert mark(out, name(rejected), "--reject").exit_code == 0
    before = marks_of(out)

    retried = invoke(
        "retry", "picks", "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert retried.exit_code == 0, retried.output
    assert status_json("picks", out)["counts"]["succeeded"] == 6
    assert marks_of(out) == before  # the manifest the retry wrote still has them
    # the job file reordered: the same items, the same marks
    job.write_text(job.read_text().replace('"1:1", "16:9"', '"16:9", "1:1"'))
    assert submit(job, sim, out).exit_code == 0
    assert marks_of(out) == before
    assert status_json("picks", out)["marks"] == {"star": 1, "reject": 1, "noted": 1}


def test_a_real_submit_replacing_simulated_images_drops_their_marks(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB)
    simulated = invoke("submit", job, "--simulate", "--output", out, "--no-review")
    assert simulated.exit_code == 0, simulated.output
    assert mark(out, name(images(out)[0]), "--star").exit_code == 0
    assert submit(job, sim, out).exit_code == 0
    # a mark was on a simulated picture: the real answer is another one
    assert marks_of(out) == {}
    assert status_json("picks", out)["marks"]["star"] == 0


def test_rm_removes_the_jobs_marks(picks: Path) -> None:
    assert mark(picks, name(images(picks)[0]), "--star").exit_code == 0
    removed = invoke("rm", "picks", "--yes", "--json", "--output", picks)
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["marks"] == 1
    with closing(sqlite3.connect(picks / "runner.db")) as db:
        assert db.execute("SELECT count(*) FROM marks").fetchone() == (0,)


def test_prune_never_removes_a_stale_item_with_a_marked_image(
    sim: SimServer, picks: Path
) -> None:
    out, job = picks, job_file(picks)
    ramen = [r for r in manifest(out, "picks") if "ramen" in r["prompt"]]
    kept_image, other_image = ramen[0]["outputs"][0], ramen[1]["outputs"][0]
    assert mark(out, name(kept_image), "--star").exit_code == 0
    job.write_text(job.read_text().replace(', "a bowl of ramen"', ""))
    assert submit(job, sim, out).exit_code == 0
    assert status_json("picks", out)["stale"] == 2

    pruned = invoke("prune", "picks", "--images", "--yes", "--output", out)
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.splitlines() == [
        "pruned 1 stale item(s) of picks with 1 attempt(s), 1 image file(s) deleted",
        "kept 1 stale item(s) of picks: an image of theirs is marked (`runner mark "
        "picks IMAGE --clear` lets prune take it)",
    ]
    assert (out / "picks" / kept_image).is_file()
    assert not (out / "picks" / other_image).exists()
    assert status_json("picks", out)["stale"] == 1
    again = invoke("prune", "picks", "--yes", "--json", "--output", out)
    assert json.loads(again.stdout) == {
        "job": "picks", "what": "stale", "items": 0, "attempts": 0, "images": 0,
        "marks": 0, "kept": 1, "waiting": 0,
    }  # fmt: skip
    # the job file has the prompt again: the kept item comes back with its mark
    job.write_text(
        job.read_text().replace(
            '"a lighthouse at dusk"', '"a lighthouse at dusk", "a bowl of ramen"'
        )
    )
    assert submit(job, sim, out).exit_code == 0
    assert marks_of(out) == {kept_image: marks_of(out)[kept_image]}
    assert marks_of(out)[kept_image]["mark"] == "star"


def test_a_cleared_stale_item_is_pruned_with_its_marks(
    sim: SimServer, picks: Path
) -> None:
    out, job = picks, job_file(picks)
    fox = next(r["outputs"][0] for r in manifest(out, "picks") if "fox" in r["prompt"])
    assert mark(out, name(fox), "--star").exit_code == 0
    job.write_text(job.read_text().replace('"a red fox in snow", ', ""))
    assert submit(job, sim, out).exit_code == 0
    assert status_json("picks", out)["marks"]["star"] == 0  # of its items now
    kept = invoke("prune", "picks", "--yes", "--output", out)
    assert "pruned 1 stale item(s)" in kept.output
    assert "kept 1 stale item(s)" in kept.output
    # the stale item's image is still named by `runner mark`: its mark can go
    cleared = mark(out, name(fox), "--clear")
    assert cleared.exit_code == 0, cleared.output
    pruned = invoke("prune", "picks", "--yes", "--output", out)
    assert pruned.output == "pruned 1 stale item(s) of picks with 1 attempt(s)\n"
    with closing(sqlite3.connect(out / "runner.db")) as db:
        assert db.execute("SELECT count(*) FROM marks").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM items").fetchone() == (4,)


# -- what reads marks ------------------------------------------------------------------


def test_the_fast_status_reader_counts_marks_like_the_store(picks: Path) -> None:
    first, second, third, *_ = images(picks)
    assert mark(picks, name(first), name(second), "--star").exit_code == 0
    assert mark(picks, name(third), "--note", "odd").exit_code == 0
    store = Store.for_output(picks)
    try:
        job = store.get_job("picks")
        assert job is not None
        status = store.status(job)
    finally:
        store.close()
    with StoreReader(picks / "runner.db") as reader:
        assert reader.status(job) == status
    assert status.marks == {"star": 2, "reject": 0, "noted": 1}


def test_the_gallery_model_carries_each_items_marks(picks: Path) -> None:
    first, second, *_ = images(picks)
    assert mark(picks, name(first), "--star", "--note", "yes").exit_code == 0
    assert mark(picks, name(second), "--reject").exit_code == 0
    entries = build_entries(manifest(picks, "picks"), [])
    assert [e.mark for e in entries] == ["star", "reject", None, None, None, None]
    assert entries[0].marks[first]["note"] == "yes"
    assert mark_counts(entries) == {"star": 1, "reject": 1, "none": 4}


# -- runner export ---------------------------------------------------------------------


REF_JOB = """
    name: picks
    prompts: ["a red fox in snow", "a lighthouse at {time}"]
    vars: {time: [dusk, dawn]}
    aspect_ratios: ["1:1"]
    image_sizes: ["2K"]
    references: [[ref.png]]
    generation: {temperature: 0.5}
"""


def test_export_copies_every_image_with_a_sidecar_saying_how_it_was_made(
    sim: SimServer, tmp_path: Path
) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ref.png")
    out = tmp_path / "out"
    assert submit(write_job(tmp_path, REF_JOB), sim, out).exit_code == 0
    rows = manifest(out, "picks")
    starred = rows[1]["outputs"][0]
    assert mark(out, name(starred), "--star", "--note", "the one").exit_code == 0
    dest = tmp_path / "export"

    result = invoke("export", "picks", dest, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.output == f"picks: copied 3 image(s) with JSON sidecars to {dest}\n"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        n for r in rows for o in r["outputs"] for n in (name(o), name(o) + ".json")
    )
    rows = manifest(out, "picks")  # with the mark
    for row in rows:
        (image,) = row["outputs"]
        copy = dest / name(image)
        assert copy.read_bytes() == (out / "picks" / image).read_bytes()
        assert (out / "picks" / image).is_file()  # copied, never moved
        card = json.loads((dest / (name(image) + ".json")).read_text("utf-8"))
        mark_ = row["marks"].get(image, {})
        assert card == {
            "job": "picks",
            "key": row["key"],
            "image": image,
            "prompt_id": row["prompt_id"],
            "prompt": row["prompt"],
            "vars": row["vars"],
            "sample": 1,
            "settings": {
                "model": "gemini-3.1-flash-image-preview",
                "aspect_ratio": "1:1",
                "image_size": "2K",
                "references": [{"path": "ref.png", "sha256": card_sha(tmp_path)}],
                "generation": {"temperature": 0.5},
                "system_instruction": None,
            },
            "usage": row["usage"],
            "finish_reason": "STOP",
            "simulated": False,
            "mark": mark_.get("mark"),
            "note": mark_.get("note"),
            "marked_at": mark_.get("updated_at"),
            "lineage": None,
        }
    assert json.loads((dest / (name(starred) + ".json")).read_text())["note"] == (
        "the one"
    )


def card_sha(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / "ref.png").read_bytes()).hexdigest()


def test_export_marked_star_writes_exactly_the_starred_images(picks: Path) -> None:
    all_images = images(picks)
    starred = [all_images[0], all_images[3], all_images[5]]
    assert mark(picks, *(name(i) for i in starred), "--star").exit_code == 0
    assert mark(picks, name(all_images[1]), "--reject").exit_code == 0
    dest = picks.parent / "stars"
    result = invoke(
        "export", "picks", dest, "--marked", "star", "--json", "--output", picks
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [i["image"] for i in data["images"]] == starred
    assert (data["copied"], data["unchanged"], data["missing"]) == (3, 0, [])
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        n for i in starred for n in (name(i), name(i) + ".json")
    )
    for marked, chosen in (
        ("reject", [all_images[1]]),
        ("any", [all_images[i] for i in (0, 1, 3, 5)]),
        ("none", [all_images[2], all_images[4]]),
    ):
        listed = invoke(
            "export", "picks", picks.parent / marked, "--marked", marked,
            "--json", "--output", picks,
        )  # fmt: skip
        assert [i["image"] for i in json.loads(listed.stdout)["images"]] == chosen
    nothing = invoke("export", "picks", dest, "--marked", "star", "--output", picks)
    assert nothing.exit_code == 0
    assert "copied 0 image(s) with JSON sidecars" in nothing.output
    assert "3 already there" in nothing.output


def test_export_is_idempotent_and_never_overwrites_another_file(picks: Path) -> None:
    first, second, *_ = images(picks)
    dest = picks.parent / "picked"
    assert mark(picks, name(first), name(second), "--star").exit_code == 0
    assert (
        invoke("export", "picks", dest, "--marked", "star", "--output", picks).exit_code
        == 0
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    again = invoke("export", "picks", dest, "--marked", "star", "--output", picks)
    assert again.output.endswith(
        f"0 image(s) with JSON sidecars to {dest}, 2 already there\n"
    )
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == stamps
    # a changed note updates the sidecar an export wrote
    assert mark(picks, name(first), "--note", "crop left").exit_code == 0
    updated = invoke("export", "picks", dest, "--marked", "star", "--output", picks)
    assert "2 already there (1 sidecar(s) updated)" in updated.output
    card = json.loads((dest / (name(first) + ".json")).read_text("utf-8"))
    assert card["note"] == "crop left"
    # another file under an image's name: refused, nothing copied
    (dest / name(second)).write_bytes(b"someone else's picture")
    (dest / (name(second) + ".json")).write_text("{}")
    assert mark(picks, name(images(picks)[2]), "--star").exit_code == 0
    refused = invoke("export", "picks", dest, "--marked", "star", "--output", picks)
    assert refused.exit_code == 2
    assert refused.output == (
        f"error: 2 file(s) in {dest} differ from what the export would write: "
        f"{dest / name(second)}, {dest / (name(second) + '.json')}; nothing was "
        "copied. Move them away, or export to another folder\n"
    )
    assert not (dest / name(images(picks)[2])).exists()
    assert (dest / name(second)).read_bytes() == b"someone else's picture"


def test_export_reports_an_image_gone_from_the_job_folder_and_exits_1(
    picks: Path,
) -> None:
    first, second, *_ = images(picks)
    (picks / "picks" / second).unlink()
    dest = picks.parent / "all"
    result = invoke("export", "picks", dest, "--output", picks)
    assert result.exit_code == 1
    assert f"warning: {second} is missing from the job folder; not exported" in (
        result.output
    )
    assert (dest / name(first)).is_file() and not (dest / name(second)).exists()
    into_images = invoke(
        "export", "picks", picks / "picks" / "images", "--output", picks
    )
    assert into_images.exit_code == 2
    assert "is the images folder of job picks itself" in into_images.output


# -- the schema step -------------------------------------------------------------------


def test_a_store_from_before_marks_is_upgraded_and_its_images_can_be_marked(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(STORE_M001 / "runner.db", out / "runner.db")
    with pytest.raises(Unreadable):  # the fast reader leaves an old store alone
        StoreReader(out / "runner.db")
    # `runner status` opens the full store instead, which adds the marks table
    assert status_json("tiny", out)["marks"] == {"star": 0, "reject": 0, "noted": 0}
    with closing(sqlite3.connect(out / "runner.db")) as db:
        steps = [n for (n,) in db.execute("SELECT name FROM _runner_migrations")]
        columns = [c[1] for c in db.execute("PRAGMA table_info(marks)")]
    assert "m004_marks" in steps
    assert columns == ["item_id", "image", "mark", "note", "updated_at"]
    image = next(i for row in manifest_rows(out) for i in row["outputs"])
    result = invoke("mark", "tiny", name(image), "--star", "--output", out)
    assert result.exit_code == 0, result.output
    assert status_json("tiny", out)["marks"]["star"] == 1
    with StoreReader(out / "runner.db") as reader:  # and now the fast path reads it
        job = reader.job("tiny")
        assert job is not None
        assert reader.status(job).marks["star"] == 1


def manifest_rows(out: Path) -> list[dict[str, Any]]:
    store = Store.for_output(out)
    try:
        job = store.get_job("tiny")
        assert job is not None
        return store.manifest_rows(job)
    finally:
        store.close()
