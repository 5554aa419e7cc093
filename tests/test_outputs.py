"""Results folder: names, sniffed extensions, atomic writes, the manifest."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from runner import outputs
from runner.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif")]
)
def test_the_extension_comes_from_the_bytes(fmt: str, ext: str) -> None:
    assert outputs.sniff_extension(encoded(fmt)) == ext


def test_bytes_that_are_no_image_have_no_extension() -> None:
    assert outputs.sniff_extension(b"<html>nope</html>") is None
    assert outputs.sniff_extension(b"") is None


def test_image_names_follow_the_spec_and_number_extra_images_from_2() -> None:
    def name(index: int) -> str:
        return outputs.image_name(
            prompt_id="banner", aspect_ratio="21:9", ref_label="r1", sample=2,
            key="0123456789abcdef", index=index, ext="png",
        )  # fmt: skip

    assert name(0) == "banner_21x9_r1_s2_01234567.png"
    assert name(1) == "banner_21x9_r1_s2_01234567_2.png"


def test_var_values_come_after_the_prompt_id_slugged_in_the_order_given() -> None:
    name = outputs.image_name(
        prompt_id="banner", var_values=["Flat Vector!", "Café au lait", "3D"],
        aspect_ratio="21:9", ref_label="r1", sample=2, key="0123456789abcdef",
        index=0, ext="png",
    )  # fmt: skip
    assert name == "banner_flat-vector_cafe-au-lait_3d_21x9_r1_s2_01234567.png"


@pytest.mark.parametrize(
    ("values", "part"),
    [
        ((), ""),
        (("  --Hello,   World--  ",), "hello-world"),
        (("猫", "dog"), "dog"),  # nothing left of a value: it is skipped
        (("a/b\\c:d", "../x"), "a-b-c-d_x"),  # nothing that names a folder
        (("a" * 30 + " tail",), "a" * 24),
        (("one two three four five six seven",), "one-two-three-four-five"),
    ],
)
def test_a_var_value_is_a_bounded_slug(values: tuple[str, ...], part: str) -> None:
    assert outputs.var_part(values) == part


def test_many_long_var_values_share_the_bound_and_each_is_still_named() -> None:
    part = outputs.var_part([f"value number {n} is long" for n in range(6)])
    assert len(part) <= outputs.VAR_PART_CHARS
    assert part.split("_") == ["value-num"] * 6


def test_the_longest_possible_name_fits_a_file_system_with_its_temp_file() -> None:
    name = outputs.image_name(
        prompt_id="p" * 100, var_values=["v" * 200] * 20, aspect_ratio="21:9",
        ref_label="r999", sample=1_000_000, key="f" * 64, index=13, ext="webp",
    )  # fmt: skip
    temp = f".{name}.{'0' * 16}.tmp"  # what write_atomic writes first
    assert len(temp.encode()) <= 230 < 255


def test_an_item_with_var_values_also_answers_to_its_earlier_name() -> None:
    @dataclass
    class Named:
        prompt_id: str = "banner"
        var_values: tuple[str, ...] = ("Warm",)
        aspect_ratio: str = "1:1"
        ref_label: str = "noref"
        sample: int = 1
        key: str = "0123456789abcdef"

    assert outputs.image_stems(Named()) == (
        "banner_warm_1x1_noref_s1_01234567",
        "banner_1x1_noref_s1_01234567",  # as written before var values were in names
    )
    assert outputs.image_stems(Named(var_values=())) == (
        "banner_1x1_noref_s1_01234567",
    )


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "images" / "a.png"
    outputs.write_atomic(target, b"one")
    outputs.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]


@pytest.mark.parametrize("failure", ["write", "fsync", "rename"])
@pytest.mark.parametrize("existing", [True, False], ids=["replace", "new"])
def test_a_write_that_fails_partway_leaves_the_old_file_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, existing: bool
) -> None:
    target = tmp_path / "images" / "a.png"
    target.parent.mkdir()
    if existing:
        target.write_bytes(b"the old image")

    def broken(*args: object) -> None:
        raise OSError(errno.EIO, f"{failure} failed")

    with contextlib.ExitStack() as stack:
        if failure == "write":
            # A real short write, whoever writes: the disk fills up after 64 KiB.
            stack.enter_context(file_size_limit(64 * 1024))
        else:
            patch = stack.enter_context(monkeypatch.context())
            patch.setattr(os, "fsync" if failure == "fsync" else "replace", broken)
        with pytest.raises(OSError):
            outputs.write_atomic(target, b"new image " * 100_000)

    if existing:
        assert target.read_bytes() == b"the old image"
    else:
        assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == (["a.png"] if existing else [])


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG (root included), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else it kills us
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_stale_temp_files_from_a_killed_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / ".a.png.x1.tmp").write_bytes(b"half")
    (tmp_path / ".manifest.jsonl.x2.tmp").write_bytes(b"half")
    assert outputs.remove_stale_temp_files(tmp_path) == 2


def test_a_temp_file_another_live_process_is_writing_is_left_alone(
    tmp_path: Path,
) -> None:
    """A `runner review` of the job writes thumbnails while a run starts."""
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"]
    ) as live:
        try:
            writing = thumbs / f".a.jpg.{live.pid}-0.tmp"
            writing.write_bytes(b"half")
            dead = thumbs / ".b.jpg.999999999-3.tmp"  # no such process
            dead.write_bytes(b"half")
            mine = thumbs / f".c.jpg.{os.getpid()}-1.tmp"  # this process: stale
            mine.write_bytes(b"half")
            assert outputs.remove_stale_temp_files(tmp_path, ["thumbs"]) == 2
            assert writing.exists() and not dead.exists() and not mine.exists()
        finally:
            live.kill()
    assert outputs.remove_stale_temp_files(tmp_path, ["thumbs"]) == 1


def test_the_manifest_has_one_json_object_per_line(tmp_path: Path) -> None:
    path = outputs.write_manifest(
        tmp_path, [{"key": "a", "prompt": "猫"}, {"key": "b"}]
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b"]
    assert "猫" in lines[0]


@pytest.mark.parametrize("name", ["..", "../evil", "a/b", "/abs", ""])
def test_a_job_folder_never_escapes_the_output_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="outside"):
        outputs.job_dir(tmp_path, name)
