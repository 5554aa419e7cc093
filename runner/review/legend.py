"""The reference-set legend: which files each set (`r0`, `r1`, ...) sends.

Owns turning the store's reference sets (label -> the files one of its items sent)
into `ReferenceSet` values in set order, and which sets a prompt's grid uses. The
gallery and the contact sheets both draw it; `thumbnails` gives each file its
thumbnail. Pure: must not read files, draw, or render HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from runner.review.grid import Grid


@dataclass(slots=True)
class ReferenceFile:
    """One file of a set, as the requests sent it."""

    path: str  # as written in the job file
    abs_path: str
    sha256: str  # of the bytes sent
    thumb: str | None = None  # relative to the job folder, once made
    note: str | None = None  # why it has no thumbnail


@dataclass(frozen=True, slots=True)
class ReferenceSet:
    label: str  # "r0", ... as in image names and the `references` axis
    files: tuple[ReferenceFile, ...]

    @property
    def names(self) -> str:
        """The set's paths as written, on one line."""
        return ", ".join(f.path for f in self.files)


def reference_legend(
    stored: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[ReferenceSet]:
    """The store's `reference_sets` as a legend, in set order (r0, r1, ..., r10)."""
    return [
        ReferenceSet(
            label,
            tuple(
                ReferenceFile(str(f["path"]), str(f["abs_path"]), str(f["sha256"]))
                for f in stored[label]
            ),
        )
        for label in sorted(stored, key=_set_order)
    ]


def sets_of(grid: Grid, legend: Iterable[ReferenceSet]) -> tuple[ReferenceSet, ...]:
    """The sets a prompt's items send, in legend order."""
    used = {entry.axes.get("references") for entry in grid.entries}
    return tuple(s for s in legend if s.label in used)


def _set_order(label: str) -> tuple[int, str]:
    digits = label.removeprefix("r")
    return (int(digits), label) if digits.isdigit() else (1 << 30, label)
