"""Folders, store files and environment variables a command cannot use, through the
real CLI: one line per problem naming the folder, file or variable and the fix,
exit 2, nothing sent. CI runs as root, where chmod stops nothing: the cases that
must hold there use a path under a regular file, /proc (which nobody can write),
and a read-only bind mount (in a private mount namespace, where `unshare` is
allowed); the chmod cases run only as another user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.review import build as review_build
from tests.e2e import REPO, SECRET, invoke, write_job

if TYPE_CHECKING:
    from runner.simulate import SimServer


def chmod_stops_writes() -> bool:
    """Whether this process is refused by file permissions (root is not, unless it
    runs without CAP_DAC_OVERRIDE)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder, "locked")
        locked.mkdir(mode=0o500)
        try:
            (locked / "x").touch()
        except PermissionError:
            return True
        finally:
            locked.chmod(0o700)
    return False


CHMOD_STOPS_WRITES = chmod_stops_writes()

JOB = "name: small\nprompts: ['one', 'two [sim:400]']\n"
FIX = "choose another --output, e.g. --output ./output"
STORE_FIX = "or use another --output (or --db)"


def run(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = invoke(*args, env={"TOKAIFY_API_KEY": SECRET, **(env or {})})
    return result.exit_code, result.output


def every_command(job: Path, out: Path, url: str) -> list[tuple[str | Path, ...]]:
    """Each command that uses the output folder, with `out` as --output."""
    return [
        ("submit", job, "--base-url", url, "--output", out),
        ("plan", job, "--output", out),
        ("status", "small", "--output", out),
        ("list", "--output", out),
        ("retry", "small", "--base-url", url, "--output", out),
        ("review", "small", "--output", out),
    ]


def test_an_output_under_a_regular_file_is_one_line_for_every_command(
    sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    job = write_job(tmp_path, JOB)
    for out in (tmp_path / "notes.txt" / "out", tmp_path / "notes.txt"):
        for command in every_command(job, out, sim.url):
            code, output = run(*command)
            assert (code, output) == (
                2,
                f"error: the output folder {out} (--output or RUNNER_OUTPUT) cannot "
                f"be made: {tmp_path / 'notes.txt'} is a file, not a folder; {FIX}\n",
            ), command
    code, output = run("list", env={"RUNNER_OUTPUT": str(tmp_path / "notes.txt")})
    assert code == 2 and "(--output or RUNNER_OUTPUT) cannot be made" in output
    assert sim.stats()["requests"] == 0


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_nobody_can_write_is_one_line_even_as_root(tmp_path: Path) -> None:
    job = write_job(tmp_path, JOB)
    code, output = run("submit", job, "--simulate", "--output", "/proc")
    assert (code, output) == (
        2,
        "error: the output folder /proc (--output or RUNNER_OUTPUT) is not writable "
        f"(no such file or directory); {FIX}\n",
    )
    code, output = run("plan", job, "--output", "/proc/self/out")
    assert (code, output) == (
        2,
        "error: the output folder /proc/self/out (--output or RUNNER_OUTPUT) cannot "
        f"be made in /proc/self (no such file or directory); {FIX}\n",
    )


@pytest.mark.skipif(not CHMOD_STOPS_WRITES, reason="root writes through chmod 500")
def test_an_output_without_write_permission_is_one_line(tmp_path: Path) -> None:
    job = write_job(tmp_path, JOB)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code, output = run("submit", job, "--simulate", "--output", locked)
        assert (code, output) == (
            2,
            f"error: the output folder {locked} (--output or RUNNER_OUTPUT) is not "
            f"writable (permission denied); fix its permissions (chmod), or {FIX}\n",
        )
        code, output = run("plan", job, "--output", locked / "out")
        assert code == 2 and output == (
            f"error: the output folder {locked / 'out'} (--output or RUNNER_OUTPUT) "
            f"cannot be made in {locked} (permission denied); fix that folder's "
            f"permissions (chmod), or {FIX}\n"
        )
    finally:
        locked.chmod(0o700)


def read_only_bind(folder: Path, *commands: str) -> subprocess.CompletedProcess[str]:
    """Run shell `commands` with `folder` bound read-only onto itself, in a private
    mount namespace (nothing outside it sees the mount)."""
    script = (
        f"mount --bind '{folder}' '{folder}' && "
        f"mount -o remount,ro,bind '{folder}' && " + " ; ".join(commands)
    )
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKAIFY_API_KEY": SECRET},
        cwd=REPO,
        timeout=60,
    )


def can_bind_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = read_only_bind(probe, f"touch '{probe}/x' 2>/dev/null; test ! -e x")
    ok = done.returncode == 0 and not (probe / "x").exists()
    probe.rmdir()
    return ok


def test_a_read_only_output_and_store_are_one_line_as_root_too(
    tmp_path: Path,
) -> None:
    if not can_bind_read_only(tmp_path):
        pytest.skip("no private mount namespace here (unshare/mount not allowed)")
    job = write_job(tmp_path, JOB)
    frozen = tmp_path / "frozen"
    code, output = run("submit", job, "--simulate", "--output", frozen, "--no-review")
    assert code == 1, output  # the [sim:400] item; frozen/runner.db now exists
    runner = f"'{sys.executable}' -m runner"
    done = read_only_bind(
        frozen,
        f"{runner} submit '{job}' --simulate --output '{frozen}'; echo exit=$?",
        f"{runner} plan '{job}' --output '{frozen}/new'; echo exit=$?",
        f"{runner} plan '{job}' --output '{tmp_path}/rw' "
        f"--db 'sqlite:///{frozen}/runner.db'; echo exit=$?",
    )
    assert done.stdout.split() == ["exit=2"] * 3, done.stderr
    assert done.stderr.splitlines() == [
        f"error: the output folder {frozen} (--output or RUNNER_OUTPUT) is not "
        f"writable (read-only file system); {FIX}",
        f"error: the output folder {frozen}/new (--output or RUNNER_OUTPUT) cannot "
        f"be made in {frozen} (read-only file system); {FIX}",
        f"error: the store file {frozen}/runner.db cannot be written: its file is "
        f"read-only; fix the permissions, {STORE_FIX}",
    ]


def test_a_store_file_that_is_no_store_is_one_line(tmp_path: Path) -> None:
    job = write_job(tmp_path, JOB)
    folder_db, text_db = tmp_path / "a", tmp_path / "b"
    (folder_db / "runner.db").mkdir(parents=True)
    text_db.mkdir()
    (text_db / "runner.db").write_text("id,name\n1,not a database\n")
    cases = {
        folder_db: f"is a folder, not a database; move it aside, {STORE_FIX}",
        text_db: "is not a SQLite database (another program's file?); move it "
        f"aside, {STORE_FIX}",
    }
    for out, problem in cases.items():
        for command in (
            ("submit", job, "--simulate", "--output", out),
            ("plan", job, "--output", out),
            ("status", "small", "--output", out),
            ("list", "--output", out),
        ):
            code, output = run(*command)
            expected = f"error: the store file {out / 'runner.db'} {problem}\n"
            assert (code, output) == (2, expected), command
    db = tmp_path / "notes.txt" / "runner.db"
    (tmp_path / "notes.txt").write_text("")
    code, output = run("list", "--db", f"sqlite:///{db}")
    assert (code, output) == (
        2,
        f"error: the store file {db} cannot be created: its folder {db.parent} does "
        f"not exist or is not a folder; create the folder, {STORE_FIX}\n",
    )


@pytest.mark.skipif(not CHMOD_STOPS_WRITES, reason="root reads through chmod 000")
def test_a_store_file_without_permission_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    store = out / "runner.db"
    store.write_bytes(b"")
    store.chmod(0)
    try:
        code, output = run("list", "--output", out)
        assert (code, output) == (
            2,
            f"error: the store file {store} cannot be read (permission denied); fix "
            f"its permissions, {STORE_FIX}\n",
        )
    finally:
        store.chmod(0o600)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "RUNNER_CONFIRM_USD",
            "abc",
            "RUNNER_CONFIRM_USD='abc' is not an amount in USD; set it to a number "
            ">= 0, e.g. RUNNER_CONFIRM_USD=5 to be asked before a run estimated above "
            "$5, or unset it",
        ),
        ("RUNNER_CONFIRM_USD", "-1", "RUNNER_CONFIRM_USD='-1' is not an amount"),
        ("RUNNER_CONFIRM_USD", "nan", "RUNNER_CONFIRM_USD='nan' is not an amount"),
        (
            "RUNNER_DEBUG",
            "maybe",
            "RUNNER_DEBUG='maybe' is not a yes/no value; set it to 1 to show "
            "tracebacks, 0 or nothing for one-line errors",
        ),
        (
            "RUNNER_DB",
            "runner.db",
            "the store URL (unparseable URL) is not a database URL; fix --db (or "
            "RUNNER_DB), e.g. sqlite:///path/to/runner.db",
        ),
        (
            "RUNNER_DB",
            "nosuchdb://user:pw@host/x",
            "the store URL nosuchdb://user:***@host/x is not a database URL",
        ),
        (
            "RUNNER_BASE_URL",
            "api.example.com",
            "base URL 'api.example.com' is not an http(s) URL; fix --base-url (or "
            "RUNNER_BASE_URL), e.g. https://api.tokaify.com",
        ),
    ],
)
def test_a_bad_environment_variable_is_one_line_and_sends_nothing(
    sim: SimServer, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    job = write_job(tmp_path, JOB)
    out = tmp_path / "out"
    url = () if variable == "RUNNER_BASE_URL" else ("--base-url", sim.url)
    code, output = run("submit", job, *url, "--output", out, env={variable: value})
    assert code == 2, output
    assert output.startswith(f"error: {message}") and output.count("\n") == 1
    assert "Traceback" not in output and "pw" not in output
    assert sim.stats()["requests"] == 0


def test_a_confirm_threshold_that_is_a_number_is_taken(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, JOB)
    for value in (" 0.5 ", "10", "1e3", ""):
        env = {"RUNNER_CONFIRM_USD": value, "RUNNER_DEBUG": "0"}
        code, output = run("submit", job, "--base-url", sim.url, "--output",
                           tmp_path / "out", env=env)  # fmt: skip
        assert code == 1, output  # the [sim:400] item


def test_a_failing_gallery_never_hides_the_summary_or_the_exit_code(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    def broken(*args: object) -> None:
        raise ValueError("thumbnail of a damaged image")

    monkeypatch.setattr(review_build, "write_gallery", broken)
    job = write_job(tmp_path, JOB)
    code, output = run("submit", job, "--base-url", sim.url, "--output",
                       tmp_path / "out")  # fmt: skip
    assert code == 1, output  # the run's own: one item refused, not a traceback
    lines = output.splitlines()
    warning = lines.index(
        "warning: the gallery could not be rebuilt (ValueError: thumbnail of a "
        "damaged image); try `runner review`"
    )
    assert lines[warning + 1].startswith("small: sent 2 requests for 2 items")
    assert any("succeeded" in line for line in lines[warning + 2 :])


@pytest.mark.skipif(
    not Path("/proc/sys/vm/drop_caches").exists(), reason="needs Linux /proc"
)
def test_a_store_file_nobody_may_read_is_one_line_even_as_root() -> None:
    # A write-only sysctl: procfs denies reading it to root as well (mode 0200).
    store = Path("/proc/sys/vm/drop_caches")
    code, output = run("list", "--db", f"sqlite:///{store}")
    assert (code, output) == (
        2,
        f"error: the store file {store} cannot be read (permission denied); fix "
        f"its permissions, {STORE_FIX}\n",
    )
