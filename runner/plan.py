"""Pure expansion of a `JobSpec` into frozen `Item`s with deterministic keys.

Owns: the grid product (prompts x their vars x aspect ratios x image sizes x
reference sets x samples), its size counted from the axes before anything is
expanded (a job past MAX_ITEMS is refused), GitHub-Actions-style `exclude`/`include`,
the canonical request that an item key hashes (`tools` in it only when set). Must
not do I/O or import anyio, httpx or sqlalchemy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import JobSpecError
from runner.spec import MAX_ITEMS, JobSpec, MatrixEntry, Reference

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


# Bump when what a plan contains for the same job file changes (keys, labels).
PLAN_VERSION = 1


def plan_digest(spec: JobSpec) -> str:
    """Identifies the plan a job file gives: its text, where it is, and the content
    of its reference images. Equal digests mean an equal plan, so a resubmit of an
    unchanged job can skip planning and go straight to sending."""
    refs = [
        [str(r.abs_path), r.sha256] for refs in spec.all_reference_sets for r in refs
    ]
    blob = json.dumps(
        [PLAN_VERSION, str(spec.path), spec.source_sha256, refs], ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Request:
    """Everything that decides what the API is asked; the item key hashes it."""

    model: str
    text: str
    aspect_ratio: str | None  # None = "auto": send no aspectRatio
    image_size: str | None  # None = the model's default
    references: tuple[Reference, ...]
    generation: Mapping[str, Any]
    system_instruction: str | None
    safety_settings: tuple[Mapping[str, Any], ...] | None
    tools: tuple[Mapping[str, Any], ...] | None = None

    def canonical(self) -> dict[str, Any]:
        """The key-relevant content: reference images by content hash, not path.
        `tools` is in it only when set, so the keys of jobs without tools stay."""
        data: dict[str, Any] = {
            "model": self.model,
            "text": self.text,
            "aspect_ratio": self.aspect_ratio,
            "image_size": self.image_size,
            "references": [[r.sha256, r.mime_type] for r in self.references],
            "generation": dict(self.generation),
            "system_instruction": self.system_instruction,
            "safety_settings": (
                None if self.safety_settings is None else list(self.safety_settings)
            ),
        }
        if self.tools is not None:
            data["tools"] = list(self.tools)
        return data

    def to_json(self) -> str:
        data = self.canonical()
        data["references"] = [_reference_to_dict(r) for r in self.references]
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Request:
        data = json.loads(text)
        safety, tools = data["safety_settings"], data.get("tools")
        return cls(
            model=data["model"],
            text=data["text"],
            aspect_ratio=data["aspect_ratio"],
            image_size=data["image_size"],
            references=tuple(_reference_from_dict(r) for r in data["references"]),
            generation=data["generation"],
            system_instruction=data["system_instruction"],
            safety_settings=None if safety is None else tuple(safety),
            tools=None if tools is None else tuple(tools),
        )


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    position: int  # order in the plan, for stable dispatch and display
    prompt_id: str
    vars: Mapping[str, str]  # in the order the prompt first uses each var
    aspect_ratio: str  # as in the job file, "auto" included
    image_size: str | None
    ref_set: int  # index into JobSpec.all_reference_sets
    ref_label: str  # "noref" for a text-only set, else "r<index>" (0-based)
    sample: int  # 1-based
    request: Request

    @property
    def prompt(self) -> str:
        return self.request.text

    @property
    def var_values(self) -> tuple[str, ...]:
        """In the order the prompt first uses each var (its image file name's)."""
        return tuple(self.vars.values())

    @property
    def reference_paths(self) -> tuple[str, ...]:
        return tuple(r.path for r in self.request.references)

    def axes(self) -> dict[str, Any]:
        """Axis values as `exclude`/`include` and review see them."""
        return {
            "prompt": self.prompt_id,
            "aspect_ratio": self.aspect_ratio,
            "image_size": self.image_size,
            "references": self.ref_label,
            "sample": self.sample,
            **self.vars,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    items: tuple[Item, ...]
    duplicates: int  # cells whose request equalled an earlier cell's, dropped

    def axis_counts(self) -> dict[str, dict[str, int]]:
        """Items per value of each axis, in first-seen order."""
        counts: dict[str, Counter[str]] = {}
        for item in self.items:
            for axis, value in item.axes().items():
                shown = "(default)" if value is None else str(value)
                counts.setdefault(axis, Counter())[shown] += 1
        return {axis: dict(c) for axis, c in counts.items()}


@dataclass(frozen=True, slots=True)
class GridSize:
    """How many items a job makes at most, counted from its axes alone."""

    cells: int  # the grid before exclude
    included: int  # cells include entries name, at most (some may exist already)
    factors: str  # how `cells` multiplies out, e.g. "4 prompts x 3 aspect ratios"
    excludes: bool  # exclude entries may drop some of `cells`

    @property
    def bound(self) -> int:
        """No plan of this job has more items than this."""
        return self.cells + self.included


def grid_size(spec: JobSpec) -> GridSize:
    """The grid's size by arithmetic: fast whatever the size, nothing expanded."""
    groups: dict[tuple[str, ...], int] = {}
    for prompt in spec.prompts:
        groups[prompt.placeholders] = groups.get(prompt.placeholders, 0) + 1
    shared = {
        "aspect ratio": len(spec.aspect_ratios),
        "image size": len(spec.image_sizes),
        "reference set": len(spec.references),
        "sample": spec.samples,
    }
    per_prompt = sum(
        count * math.prod(len(spec.vars[n]) for n in names)
        for names, count in groups.items()
    )
    cells = per_prompt * math.prod(shared.values())
    included = sum(_include_size(spec, entry) for entry in spec.include)
    return GridSize(cells, included, _factors(spec, groups, shared), bool(spec.exclude))


def check_grid_size(spec: JobSpec) -> GridSize:
    """The grid's size; JobSpecError when it could pass MAX_ITEMS (SPEC section 2)."""
    size = grid_size(spec)
    if size.bound <= MAX_ITEMS:
        return size
    made = f"makes {size.cells:,} items"
    if size.excludes:
        made = f"makes up to {size.cells:,} items before exclude"
    added = f", plus up to {size.included:,} from include" if size.included else ""
    raise JobSpecError(
        spec.path,
        f"this job file {made} ({size.factors}){added}; the limit is "
        f"{MAX_ITEMS:,} items per job: remove values from the largest axes, or "
        "split the job into several job files",
    )


def build_plan(spec: JobSpec) -> Plan:
    """Expand the grid, drop `exclude` matches, add `include` cells, key each item.
    A grid that could pass MAX_ITEMS is refused before anything is expanded."""
    check_grid_size(spec)
    cells = [c for c in _grid(spec) if not _excluded(c, spec)]
    seen_cells = {_cell_id(c) for c in cells}
    for entry in spec.include:
        for cell in _include_cells(spec, entry):
            if _cell_id(cell) not in seen_cells:
                seen_cells.add(_cell_id(cell))
                cells.append(cell)

    items: list[Item] = []
    keys: set[str] = set()
    duplicates = 0
    for cell in cells:
        item = _make_item(spec, cell, position=len(items))
        if item.key in keys:
            duplicates += 1
            continue
        keys.add(item.key)
        items.append(item)
    return Plan(items=tuple(items), duplicates=duplicates)


def item_key(request: Request, sample: int) -> str:
    """sha256 of the canonical request JSON plus the sample index (hex, 64 chars)."""
    payload = {"request": request.canonical(), "sample": sample}
    blob = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def ref_label(index: int, refs: tuple[Reference, ...]) -> str:
    return "noref" if not refs else f"r{index}"


@dataclass(frozen=True, slots=True)
class _Cell:
    prompt_index: int
    vars: tuple[tuple[str, str], ...]
    aspect_ratio: str
    image_size: str | None
    ref_set: int
    sample: int


def _grid(spec: JobSpec) -> Iterator[_Cell]:
    for p_index, prompt in enumerate(spec.prompts):
        var_axes = [[(n, v) for v in spec.vars[n]] for n in prompt.placeholders]
        for combo in itertools.product(*var_axes):
            for ratio, size, ref_set, sample in itertools.product(
                spec.aspect_ratios,
                spec.image_sizes,
                range(len(spec.references)),
                range(1, spec.samples + 1),
            ):
                yield _Cell(p_index, tuple(combo), ratio, size, ref_set, sample)


def _cell_id(cell: _Cell) -> tuple[Any, ...]:
    return (cell.prompt_index, cell.vars, cell.aspect_ratio, cell.image_size,
            cell.ref_set, cell.sample)  # fmt: skip


def _matches(cell: _Cell, entry: MatrixEntry, spec: JobSpec) -> bool:
    if entry.prompt is not None and spec.prompts[cell.prompt_index].id != entry.prompt:
        return False
    if entry.aspect_ratio is not None and cell.aspect_ratio != entry.aspect_ratio:
        return False
    if entry.image_size is not None and cell.image_size != entry.image_size:
        return False
    if entry.references is not None and cell.ref_set != entry.references:
        return False
    if entry.sample is not None and cell.sample != entry.sample:
        return False
    cell_vars = dict(cell.vars)
    return all(cell_vars.get(name) == value for name, value in entry.vars.items())


def _excluded(cell: _Cell, spec: JobSpec) -> bool:
    return any(_matches(cell, entry, spec) for entry in spec.exclude)


def _include_cells(spec: JobSpec, entry: MatrixEntry) -> Iterator[_Cell]:
    """Cells an include entry names: axes it leaves out take every axis value."""
    prompts = [i for i, p in enumerate(spec.prompts) if entry.prompt in (None, p.id)]
    ratios = [entry.aspect_ratio] if entry.aspect_ratio else list(spec.aspect_ratios)
    sizes = [entry.image_size] if entry.image_size else list(spec.image_sizes)
    refs = (
        [entry.references]
        if entry.references is not None
        else list(range(len(spec.references)))
    )
    samples = [entry.sample] if entry.sample else list(range(1, spec.samples + 1))
    for p_index in prompts:
        prompt = spec.prompts[p_index]
        var_axes = [
            [(n, entry.vars[n])] if n in entry.vars else [(n, v) for v in spec.vars[n]]
            for n in prompt.placeholders
        ]
        for combo in itertools.product(*var_axes):
            for ratio, size, ref_set, sample in itertools.product(
                ratios, sizes, refs, samples
            ):
                yield _Cell(p_index, tuple(combo), ratio, size, ref_set, sample)


def _include_size(spec: JobSpec, entry: MatrixEntry) -> int:
    """How many cells `_include_cells` yields for `entry`, without yielding them."""
    fixed = (
        1 if entry.aspect_ratio else len(spec.aspect_ratios),
        1 if entry.image_size else len(spec.image_sizes),
        1 if entry.references is not None else len(spec.references),
        1 if entry.sample else spec.samples,
    )
    per_prompt = sum(
        math.prod(1 if n in entry.vars else len(spec.vars[n]) for n in p.placeholders)
        for p in spec.prompts
        if entry.prompt in (None, p.id)
    )
    return per_prompt * math.prod(fixed)


def _factors(
    spec: JobSpec, groups: Mapping[tuple[str, ...], int], shared: Mapping[str, int]
) -> str:
    """'4 prompts x 3,000 values of 'style' x 2 aspect ratios': axes of one value
    left out; prompts that use different vars are summed in brackets."""

    def counted(number: int, what: str) -> str:
        return f"{number:,} {what}{'' if number == 1 else 's'}"

    terms = []
    largest = sorted(
        groups.items(),
        key=lambda g: -g[1] * math.prod(len(spec.vars[n]) for n in g[0]),
    )
    for names, count in largest[:_SHOWN_PROMPT_GROUPS]:
        parts = [counted(count, "prompt")]
        parts += [
            f"{len(spec.vars[n]):,} values of '{n}'"
            for n in names
            if len(spec.vars[n]) > 1
        ]
        terms.append(" x ".join(parts))
    rest = sum(count for _, count in largest[_SHOWN_PROMPT_GROUPS:])
    if rest:
        terms.append(counted(rest, "more prompt"))
    prompts = terms[0] if len(terms) == 1 else f"({' + '.join(terms)})"
    axes = [counted(n, what) for what, n in shared.items() if n > 1]
    return " x ".join([prompts, *axes])


_SHOWN_PROMPT_GROUPS = 3  # groups of prompts (by the vars they use) a message names


def _make_item(spec: JobSpec, cell: _Cell, *, position: int) -> Item:
    prompt = spec.prompts[cell.prompt_index]
    values = dict(cell.vars)
    refs = spec.all_reference_sets[cell.ref_set]
    request = Request(
        model=spec.model,
        text=prompt.render(values),
        aspect_ratio=None if cell.aspect_ratio == "auto" else cell.aspect_ratio,
        image_size=cell.image_size,
        references=refs,
        generation=spec.generation,
        system_instruction=spec.system_instruction,
        safety_settings=spec.safety_settings,
        tools=spec.tools,
    )
    return Item(
        key=item_key(request, cell.sample),
        position=position,
        prompt_id=prompt.id,
        vars=values,
        aspect_ratio=cell.aspect_ratio,
        image_size=cell.image_size,
        ref_set=cell.ref_set,
        ref_label=ref_label(cell.ref_set, refs),
        sample=cell.sample,
        request=request,
    )


def _reference_to_dict(ref: Reference) -> dict[str, Any]:
    return {
        "path": ref.path,
        "abs_path": str(ref.abs_path),
        "sha256": ref.sha256,
        "mime_type": ref.mime_type,
        "width": ref.width,
        "height": ref.height,
        "size": ref.size,
    }


def _reference_from_dict(data: Mapping[str, Any]) -> Reference:
    return Reference(
        path=data["path"],
        abs_path=Path(data["abs_path"]),
        sha256=data["sha256"],
        mime_type=data["mime_type"],
        width=data["width"],
        height=data["height"],
        size=data["size"],
    )
