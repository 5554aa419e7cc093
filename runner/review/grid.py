"""The review's model of a job: one entry per item, one grid per prompt.

Owns turning store rows (manifest rows, attempt rows) into `Entry` values, laying
each prompt's entries out as a `Grid` (which axis runs across, which down), how an
axis and its values are labelled, the counts behind the page's filters, and each
item's marks (SPEC 6: per image, read from its manifest row). Pure:
must not read files, draw, or render HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from runner.review.grounding import read_grounding
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from runner.review.grounding import Grounding

NO_VALUE = "—"


@dataclass(slots=True)
class Entry:
    """One item as the review shows it."""

    row: Mapping[str, Any]
    axes: dict[str, str]  # axis key -> value, see _item_axes
    tokens: int | None  # totalTokenCount over every attempt (blocked ones are billed)
    image: str | None = None  # first output, relative to the job folder
    thumb: str | None = None  # relative to the job folder, once made
    thumb_mtime: int = 0
    note: str | None = None  # why an item that has outputs shows no picture
    grounding: Grounding | None = None  # the success's sources and suggestions

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def marks(self) -> Mapping[str, Mapping[str, Any]]:
        """image -> {mark, note, updated_at} for the item's marked images."""
        marks: Mapping[str, Mapping[str, Any]] = self.row.get("marks") or {}
        return marks

    @property
    def mark(self) -> str | None:
        """The mark (star, reject) of the image the entry shows, if any."""
        shown = self.marks.get(self.image or "")
        return None if shown is None else shown.get("mark")

    @property
    def reason(self) -> str:
        """Finish reason and error, as one line ('' when there is nothing to say)."""
        finish, error = self.row.get("finish_reason"), self.row.get("error")
        if self.note:
            return self.note
        if self.status == "succeeded":
            return ""
        parts = [str(error)] if error else []
        if finish and finish != "STOP" and not (error and str(finish) in str(error)):
            parts.insert(0, str(finish))
        if parts:
            # a middle dot, not a dash: Pillow's bundled font has no U+2014
            return " · ".join(parts)
        return {"pending": "not sent yet", "running": "in flight"}.get(
            self.status, "no reason recorded"
        )


@dataclass(frozen=True, slots=True)
class Grid:
    """A prompt's items laid out: one column per value of `col_axis`, one row per
    combination of the other axes that vary within the prompt."""

    prompt_id: str
    texts: tuple[str, ...]  # distinct prompt templates (see _template), plan order
    var_names: tuple[str, ...]
    col_axis: str | None
    row_axes: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    cells: Mapping[tuple[int, int], Entry]
    entries: tuple[Entry, ...]

    def column_label(self, c: int) -> str:
        if self.col_axis is None:
            return ""
        return value_label(self.col_axis, self.columns[c])

    def row_lines(self, r: int) -> list[str]:
        values = self.rows[r]
        lines = [value_label(a, v) for a, v in zip(self.row_axes, values, strict=False)]
        # values beyond the axes only appear when two items share a cell
        return lines + [f"duplicate {v}" for v in values[len(self.row_axes) :]]

    def entry_label(self, entry: Entry) -> str:
        axes = ([self.col_axis] if self.col_axis else []) + list(self.row_axes)
        return " · ".join(value_label(a, entry.axes.get(a, NO_VALUE)) for a in axes)


def build_entries(
    manifest_rows: Iterable[Mapping[str, Any]],
    attempt_rows: Iterable[Mapping[str, Any]],
) -> list[Entry]:
    """One entry per manifest row, in plan order, with its tokens over all attempts."""
    tokens = _tokens_by_key(attempt_rows)
    return [_entry(row, tokens.get(row["key"])) for row in manifest_rows]


def build_grids(entries: Iterable[Entry]) -> list[Grid]:
    """One grid per prompt, in the order prompts first appear."""
    return [_grid(pid, group) for pid, group in _by_prompt(entries).items()]


def axis_title(axis: str) -> str:
    titles = {
        "prompt": "Prompt",
        "status": "Status",
        "aspect_ratio": "Aspect ratio",
        "image_size": "Size",
        "references": "References",
        "sample": "Sample",
        "parent": "Parent",
    }
    return titles.get(axis, axis.removeprefix("var:"))


def chip_label(axis: str, value: str) -> str:
    """How a value reads under its axis title (filters)."""
    if axis == "references":
        return "none" if value == "noref" else value
    return value


def value_label(axis: str, value: str) -> str:
    """How a value reads in a header, where the axis name is not shown."""
    if axis == "image_size":
        return "default size" if value == "default" else value
    if axis == "references":
        return "no refs" if value == "noref" else f"refs {value}"
    if axis == "sample":
        return f"sample {value}"
    if axis == "parent":
        return f"parent {value}"
    if axis.startswith("var:"):
        return f"{axis[4:]}: {value}"
    return value


def filter_counts(entries: Sequence[Entry]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(axis, [(value, count)]) for status and every axis with more than one value."""
    counts: dict[str, dict[str, int]] = {"status": {}, "prompt": {}}
    for entry in entries:
        values = {"status": entry.status, "prompt": str(entry.row["prompt_id"])}
        values.update(entry.axes)
        for axis, value in values.items():
            bucket = counts.setdefault(axis, {})
            bucket[value] = bucket.get(value, 0) + 1
    status_order = {s: i for i, s in enumerate(STATUSES)}
    result: list[tuple[str, list[tuple[str, int]]]] = [
        (
            "status",
            sorted(
                counts["status"].items(), key=lambda kv: status_order.get(kv[0], 99)
            ),
        )
    ]
    for axis, bucket in counts.items():
        if axis != "status" and len(bucket) > 1:
            result.append((axis, list(bucket.items())))
    return result


def mark_counts(entries: Iterable[Entry]) -> dict[str, int]:
    """Images by mark over these entries: star, reject, and unmarked ones ("none"),
    for a filter by mark."""
    counts = {"star": 0, "reject": 0, "none": 0}
    for entry in entries:
        for image in entry.row.get("outputs") or []:
            mark = (entry.marks.get(image) or {}).get("mark")
            counts[mark if mark in counts else "none"] += 1
    return counts


def _item_axes(row: Mapping[str, Any]) -> dict[str, str]:
    """Every axis value of an item, in display order: aspect ratio, parent image
    (a derived item's, by its file name's stem), vars, size, reference set,
    sample. Var names are prefixed so a var called `sample` is safe."""
    axes = {"aspect_ratio": str(row["aspect_ratio"])}
    parent = row.get("parent")
    if parent:  # a derived item: its parent image is one more axis (SPEC 6)
        axes["parent"] = PurePosixPath(str(parent["image"])).stem
    for name, value in (row.get("vars") or {}).items():
        axes[f"var:{name}"] = str(value)
    axes["image_size"] = str(row.get("image_size") or "default")
    axes["references"] = str(row.get("ref_set") or "noref")
    axes["sample"] = str(row["sample"])
    return axes


def _entry(row: Mapping[str, Any], tokens: int | None) -> Entry:
    entry = Entry(
        row=row,
        axes=_item_axes(row),
        tokens=tokens,
        grounding=read_grounding(row.get("grounding")),
    )
    found = list(row.get("outputs") or [])
    if found:
        entry.image = str(found[0])
    return entry


def _tokens_by_key(attempt_rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for attempt in attempt_rows:
        usage_json = attempt.get("usage_json")
        if not usage_json:
            continue  # no answer with usage: nothing known to be billed
        total = attempt.get("total_tokens")  # the store's copy, when it has one
        if total is None:
            total = json.loads(usage_json).get("totalTokenCount")
        key = str(attempt["key"])
        totals[key] = totals.get(key, 0) + int(total or 0)
    return totals


def _by_prompt(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(str(entry.row["prompt_id"]), []).append(entry)
    return groups


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _template(row: Mapping[str, Any]) -> str:
    """The rendered prompt with each var value put back as `{name}`.

    The store keeps rendered text only; this recovers the job file's template for
    headers (exact unless a value also occurs elsewhere in the text)."""
    text = str(row["prompt"])
    values = sorted((row.get("vars") or {}).items(), key=lambda kv: -len(str(kv[1])))
    for name, value in values:
        if str(value):
            text = text.replace(str(value), "{" + str(name) + "}")
    return text


def _follows(entries: Sequence[Entry], axis: str, by: str) -> bool:
    """Whether every value of axis `by` goes with one value of `axis`."""
    seen: dict[str, str] = {}
    return all(
        seen.setdefault(e.axes.get(by, NO_VALUE), e.axes.get(axis, NO_VALUE))
        == e.axes.get(axis, NO_VALUE)
        for e in entries
    )


def _grid(prompt_id: str, entries: Sequence[Entry]) -> Grid:
    values: dict[str, list[str]] = {}
    for entry in entries:
        for axis, value in entry.axes.items():
            values.setdefault(axis, [])
            if value not in values[axis]:
                values[axis].append(value)
    varying = [a for a, vs in values.items() if len(vs) > 1]
    preferences: tuple[str, ...] = ("aspect_ratio", "sample")
    if {"aspect_ratio", "parent"} <= set(varying) and _follows(
        entries, "aspect_ratio", "parent"
    ):
        # `aspect_ratios: [parent]`: each parent keeps its own ratio, which then
        # adds no cell of its own: parents down, what varies with each across
        varying.remove("aspect_ratio")
        preferences = ("sample",)
        if any(a not in ("parent", "sample") for a in varying):
            varying.append(varying.pop(varying.index("parent")))
    # Aspect ratio across, as in the gallery; failing that samples (repeats compare
    # best side by side), failing that the first axis that varies.
    col_axis: str | None = None
    for preferred in preferences:
        if preferred in varying:
            col_axis = preferred
            break
    else:
        col_axis = varying[0] if varying else None
    row_axes = tuple(a for a in varying if a != col_axis)
    columns = tuple(values[col_axis]) if col_axis else ("",)

    rows: list[tuple[str, ...]] = []
    row_index: dict[tuple[str, ...], int] = {}
    cells: dict[tuple[int, int], Entry] = {}
    for entry in entries:
        c = columns.index(entry.axes[col_axis]) if col_axis else 0
        key = tuple(entry.axes.get(a, NO_VALUE) for a in row_axes)
        n = 1
        while key in row_index and (row_index[key], c) in cells:
            n += 1
            key = (*key[: len(row_axes)], str(n))
        if key not in row_index:
            row_index[key] = len(rows)
            rows.append(key)
        cells[(row_index[key], c)] = entry
    return Grid(
        prompt_id=prompt_id,
        texts=tuple(_distinct(_template(e.row) for e in entries)),
        var_names=tuple(_distinct(n for e in entries for n in e.row.get("vars") or {})),
        col_axis=col_axis,
        row_axes=row_axes,
        columns=columns,
        rows=tuple(rows),
        cells=cells,
        entries=tuple(entries),
    )
