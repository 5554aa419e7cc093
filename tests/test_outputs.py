"""Results folder: names, sniffed extensions, atomic writes, the manifest."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import resource
import signal
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
