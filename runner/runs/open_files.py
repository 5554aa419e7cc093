"""The open files a run needs at its concurrency, and the process's limit on them.

Owns: how many file descriptors a run may hold at once (a connection per request in
flight, the temp file of an answer streaming in, the store, the journal and the
rest of the process), raising the soft open-file limit (RLIMIT_NOFILE) toward the
hard limit when the run needs more, and the concurrency that fits, with a warning
saying why and what to do, when it cannot be raised enough. Must not send, print
or store anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from runner.client import URL_FETCH_CONNECTIONS

# Descriptors besides the requests': the store (database, WAL, shared memory), the
# journal, the manifest and image files being written, stdio, the event loop's
# selector and wake-up pipe, and whatever imports keep open.
BASE_FILES = 64
# Per request in flight: its connection, and while its answer streams in, the temp
# file an image past a megabyte goes to. The simulator of `--simulate` runs in the
# same process and holds the server end of each connection too.
FILES_PER_REQUEST = 2
FILES_PER_SIMULATED_REQUEST = 3


@dataclass(frozen=True, slots=True)
class Fit:
    """The concurrency a run can have under the open-file limit, and if that is
    less than asked, the warning that says so."""

    concurrency: int
    warning: str | None = None


def files_needed(concurrency: int, *, simulated: bool = False) -> int:
    """Descriptors a run at `concurrency` may hold at once."""
    per = FILES_PER_SIMULATED_REQUEST if simulated else FILES_PER_REQUEST
    return BASE_FILES + per * (concurrency + URL_FETCH_CONNECTIONS)


def fit_concurrency(concurrency: int, *, simulated: bool = False) -> Fit:
    """`concurrency` if the process may open the files it needs (raising its soft
    limit toward the hard one if it must), else the highest that fits, warned."""
    if sys.platform == "win32":  # no RLIMIT_NOFILE; sockets are not limited so
        return Fit(concurrency)
    import resource

    needed = files_needed(concurrency, simulated=simulated)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return Fit(concurrency)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    except (ValueError, OSError):
        pass  # macOS refuses more than kern.maxfilesperproc, whatever the hard limit
    if soft >= needed:
        return Fit(concurrency)
    per = FILES_PER_SIMULATED_REQUEST if simulated else FILES_PER_REQUEST
    fits = max(1, (soft - BASE_FILES) // per - URL_FETCH_CONNECTIONS)
    if hard != resource.RLIM_INFINITY and hard < needed:
        how = (
            f"raise the hard limit (`ulimit -Hn {needed}` as root, or nofile in "
            "/etc/security/limits.conf)"
        )
    else:
        how = f"run `ulimit -n {needed}` in this shell first"
    return Fit(
        fits,
        f"concurrency {concurrency} needs about {needed:,} open files but this "
        f"process may open {soft:,}: sending {fits} at a time; to send more, {how}",
    )
