"""The results folder as a user finds it (SPEC 4): files that follow the umask, image
names that say their var values, and names written before that stay valid. Real
SQLite files; the simulated API on loopback, or `--simulate` in a child process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from runner import outputs
from tests.e2e import (
    REPO,
    SECRET,
    earlier_image_name,
    invoke,
    manifest,
    write_job,
)
from tests.test_review import gallery_items

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from runner.simulate import SimServer

# Two prompts with two cells each: every kind of file (images, thumbnails, a contact
# sheet per prompt, index.html, manifest.jsonl) is written.
SHARED_JOB = """
    name: shared
    prompts:
      - id: fox
        text: "a {mood} fox"
      - id: owl
        text: "a {mood} owl"
    vars:
      mood: [calm, wild]
    image_sizes: ["512"]
"""

# The spill path: an image decoded into a temp file next to its final place, then
# renamed (what a large answer takes).
SPOOLED_IMAGE = """
import base64, sys
from pathlib import Path
from runner import outputs
from runner.client.blobs import BlobExtractor

folder = Path(sys.argv[1])
extractor = BlobExtractor(spool_dir=folder, spill_bytes=0)
data = base64.b64encode(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(4096)).decode()
extractor.feed(('{"data": "' + data + '"}').encode())
extractor.finish()
(blob,) = extractor.blobs
assert blob.path is not None, "not spilled"
outputs.move_into_place(blob.path, folder / "spooled.png")
"""


def run_with_umask(umask: int, *args: str | Path) -> None:
    done = subprocess.run(
        [sys.executable, *(str(a) for a in args)],
        cwd=REPO,
        umask=umask,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under `root`, by path relative to it."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["022", "077"])
def test_every_result_file_and_folder_follows_the_umask(
    tmp_path: Path, umask: int
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, SHARED_JOB)
    run_with_umask(umask, "-m", "runner", "submit", job, "--simulate", "--output", out)
    run_with_umask(umask, "-c", SPOOLED_IMAGE, out / "shared" / "images")

    found = modes(out)
    folders = {os.path.dirname(name) for name in found}
    assert {"shared/images", "shared/thumbs", "shared/contact"} <= folders
    assert {
        "shared/index.html",
        "shared/gallery-data.js",
        "shared/manifest.jsonl",
        "runner.db",
    } <= set(found)
    assert "shared/images/spooled.png" in found
    for name, mode in found.items():
        folder = (out / name).is_dir()
        assert mode == (0o777 if folder else 0o666) & ~umask, (name, oct(mode))


# -- var values in image names ------------------------------------------------------


def real_submit(job: Path, sim: SimServer, out: Path) -> Result:
    """`runner submit` against `sim` standing for the real API."""
    return invoke(
        "submit", job, "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip


# `subject` is declared first but `style` is used first: names follow the prompt.
VARS_JOB = """
    name: named
    prompts:
      - id: poster
        text: "A {style} poster of a {subject}, {style} again"
    vars:
      subject: [Red Fox, Café]
      style: ["flat vector!"]
"""


def test_image_names_carry_the_var_values_in_the_order_the_prompt_uses_them(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = real_submit(write_job(tmp_path, VARS_JOB), sim, out)
    assert result.exit_code == 0, result.output
    rows = {row["vars"]["subject"]: row for row in manifest(out, "named")}
    fox, cafe = rows["Red Fox"], rows["Café"]
    assert fox["outputs"] == [
        f"images/poster_flat-vector_red-fox_1x1_noref_s1_{fox['key'][:8]}.png"
    ]
    assert cafe["outputs"] == [
        f"images/poster_flat-vector_cafe_1x1_noref_s1_{cafe['key'][:8]}.png"
    ]
    for row in rows.values():
        assert (out / "named" / row["outputs"][0]).is_file()


OLD_JOB = """
    name: old
    prompts: ["a {animal} in the snow"]
    vars:
      animal: [fox, hare, owl]
"""


def test_files_named_before_var_values_were_in_names_stay_the_items_files(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, OLD_JOB)
    with monkeypatch.context() as earlier:  # as an earlier runner wrote them
        earlier.setattr(outputs, "item_image_name", earlier_image_name)
        assert real_submit(job, sim, out).exit_code == 0
    images = out / "old" / "images"
    written = sorted(p.name for p in images.iterdir())
    assert len(written) == 3 and not any(
        animal in name for name in written for animal in ("fox", "hare", "owl")
    )

    # Submitted again, nothing is sent and the files keep their names ...
    assert real_submit(job, sim, out).exit_code == 0
    assert sim.stats()["requests"] == 3
    assert sorted(p.name for p in images.iterdir()) == written
    # ... the gallery shows them ...
    built = invoke("review", "old", "--output", out)
    assert built.exit_code == 0, built.output
    assert len(list((out / "old" / "thumbs").iterdir())) == 3
    shown = {item["image"] for item in gallery_items(out / "old")}
    assert shown == {f"images/{name}" for name in written}
    # ... prune removes the files of items the job file dropped ...
    (owl,) = [r["outputs"] for r in manifest(out, "old") if "owl" in r["prompt"]]
    write_job(tmp_path, OLD_JOB.replace("fox, hare, owl", "fox, hare"))
    assert real_submit(job, sim, out).exit_code == 0  # the owl is now stale
    pruned = invoke("prune", "old", "--images", "--yes", "--output", out)
    assert pruned.exit_code == 0, pruned.output
    assert owl and not (out / "old" / owl[0]).exists()
    assert len(list(images.iterdir())) == 2
    # ... and rm --images the rest, with the whole job folder.
    removed = invoke("rm", "old", "--images", "--yes", "--output", out)
    assert removed.exit_code == 0, removed.output
    assert "2 image file(s) deleted" in removed.output
    assert not (out / "old").exists()


def tree(root: Path) -> dict[str, tuple[bool, int]]:
    """Every path under `root` with whether it is a folder and its size."""
    return {
        str(path.relative_to(root)): (path.is_dir(), path.stat().st_size)
        for path in root.rglob("*")
    }


def test_plan_creates_no_folder_and_no_store(sim: SimServer, tmp_path: Path) -> None:
    job = write_job(tmp_path, SHARED_JOB)
    (tmp_path / "empty").mkdir()
    before = tree(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'jobs.db'}"
    places = [(), ("--output", tmp_path / "out"), ("--output", tmp_path / "empty")]
    for where in (*places, ("--db", url)):
        result = invoke("plan", job, "--json", *where)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["new"] == 4  # read as an empty store
        assert tree(tmp_path) == before, where
    # Against a store that exists, plan leaves it as it was too.
    out = tmp_path / "out"
    assert real_submit(job, sim, out).exit_code == 0
    before = tree(tmp_path)
    result = invoke("plan", job, "--json", "--output", out)
    assert json.loads(result.stdout)["stored"] == {"succeeded": 4}
    assert tree(tmp_path) == before
