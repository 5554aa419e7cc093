"""`python -m benchmarks.harness.launch FIGURES -- COMMAND...`: run COMMAND as this
small process's child and write its wall and CPU seconds and peak RSS to FIGURES
(JSON).

For commands that cannot measure themselves (`runner submit` as a user runs it).
Linux keeps `ru_maxrss` across fork and exec, so a command spawned straight from
the benchmark (150 MB and more after a few scenarios) would report at least the
benchmark's size as its own peak. Forked from this launcher instead, it starts
from the launcher's ~10 MB, below any contender's own. COMMAND inherits stdin,
stdout and stderr; the exit code is COMMAND's. Must not import anything beyond
the standard library (its own size is what a contender starts from).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    figures, command = argv[0], argv[2:]
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: become COMMAND
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - began
    with open(figures, "w", encoding="utf-8") as out:
        json.dump(
            {
                "wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
            },
            out,
        )
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
