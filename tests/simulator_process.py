"""`python -m runner.simulate` as a subprocess, for tests of its command line."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def module_main(*flags: str) -> Iterator[str]:
    """`python -m runner.simulate --port 0 FLAGS` running; its base URL. It gets
    SIGTERM after, and must have exited 0 by then."""
    command = [sys.executable, "-m", "runner.simulate", "--port", "0", *flags]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert found is not None, line
            yield found.group(1)
        finally:
            proc.terminate()
            returncode = proc.wait(timeout=10)
    assert returncode == 0
