"""Pure expansion of a `JobSpec` into frozen `Item`s with deterministic keys.

Owns: the grid product (prompts x their vars x aspect ratios x image sizes x
reference sets x samples, and a derived job's parent images), its size counted from
the axes before anything is expanded (a job past MAX_ITEMS is refused),
GitHub-Actions-style `exclude`/`include`, what each derived mode asks for a parent,
and the canonical request that an item key hashes (`tools`, earlier turns and the
parent in it only when set). Must not do I/O or import anyio, httpx or sqlalchemy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner import models
from runner.errors import JobSpecError
from runner.lineage import Parent, Turn
from runner.spec import MAX_ITEMS, PARENT_RATIO, JobSpec, MatrixEntry, Reference

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence


# Bump when what a plan contains for the same job file changes (keys, labels).
PLAN_VERSION = 1


# The encoders of a request's stored JSON and of the key's canonical JSON, made once:
# `json.dumps` with these options builds an encoder per call, a fifth of its time
# over a 100,000-item plan. Their output is `json.dumps`'s, byte for byte (keys!).
_REQUEST_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plan_digest(spec: JobSpec, parents: Sequence[Parent] = ()) -> str:
    """Identifies the plan a job file gives: its text, where it is, the content of
    its reference images, and a derived job's parents. Equal digests mean an equal
    plan, so a resubmit of an unchanged job can skip planning and go straight to
    sending."""
    refs = [
        [str(r.abs_path), r.sha256] for refs in spec.all_reference_sets for r in refs
    ]
    facts: list[Any] = [PLAN_VERSION, str(spec.path), spec.source_sha256, refs]
    if spec.derived is not None:
        facts.append([p.identity() for p in parents])
    blob = json.dumps(facts, ensure_ascii=False)
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
    history: tuple[Turn, ...] = ()  # earlier turns sent first (mode: continue)
    parent: str | None = None  # a derived item's parent image, by content hash

    @property
    def inline_files(self) -> tuple[Reference, ...]:
        """Every image the request carries, in the order the body sends them."""
        if not self.history:
            return self.references
        earlier = tuple(f for turn in self.history for f in turn.files)
        return earlier + self.references

    def canonical(self) -> dict[str, Any]:
        """The key-relevant content: reference images by content hash, not path.
        `tools`, `history` and `parent` are in it only when set, so the keys of
        jobs without them stay."""
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
        if self.history:
            data["history"] = [turn.canonical() for turn in self.history]
        if self.parent is not None:
            data["parent"] = self.parent
        return data

    def to_json(self) -> str:
        data = self.canonical()
        data["references"] = [r.to_dict() for r in self.references]
        if self.history:
            data["history"] = [turn.to_dict() for turn in self.history]
        return _REQUEST_JSON.encode(data)

    @classmethod
    def from_json(cls, text: str) -> Request:
        data = json.loads(text)
        safety, tools = data["safety_settings"], data.get("tools")
        return cls(
            model=data["model"],
            text=data["text"],
            aspect_ratio=data["aspect_ratio"],
            image_size=data["image_size"],
            references=tuple(Reference.from_dict(r) for r in data["references"]),
            generation=data["generation"],
            system_instruction=data["system_instruction"],
            safety_settings=None if safety is None else tuple(safety),
            tools=None if tools is None else tuple(tools),
            history=tuple(Turn.from_dict(t) for t in data.get("history", ())),
            parent=data.get("parent"),
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
    parent: Parent | None = None  # a derived item's (SPEC 6)
    mode: str | None = None  # and what it does with it: edit, continue, rerender

    @property
    def prompt(self) -> str:
        return self.request.text

    @property
    def var_values(self) -> tuple[str, ...]:
        """In the order the prompt first uses each var (its image file name's)."""
        return tuple(self.vars.values())

    @property
    def reference_paths(self) -> tuple[str, ...]:
        """Every image the request sends: a derived item's parent and earlier
        turns' images too (the manifest's `references`)."""
        return tuple(r.path for r in self.request.inline_files)

    def axes(self) -> dict[str, Any]:
        """Axis values as `exclude`/`include` and review see them."""
        derived = {} if self.parent is None else {"parent": self.parent.name}
        return {
            "prompt": self.prompt_id,
            **derived,
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


def grid_size(spec: JobSpec, parents: int | None = None) -> GridSize:
    """The grid's size by arithmetic: fast whatever the size, nothing expanded. A
    derived job's parent images are one more axis: `parents` of them (None: not
    found yet, counted as one)."""
    groups: dict[tuple[str, ...], int] = {}
    for prompt in spec.prompts:
        groups[prompt.placeholders] = groups.get(prompt.placeholders, 0) + 1
    if _rerender(spec):
        groups = {(): 1}  # each parent brings its own prompt
    shared = {
        "aspect ratio": len(spec.aspect_ratios),
        "image size": len(spec.image_sizes),
        "reference set": len(spec.references),
        "sample": spec.samples,
    }
    if spec.derived is not None:
        shared = {"parent image": 1 if parents is None else parents, **shared}
    per_prompt = sum(
        count * math.prod(len(spec.vars[n]) for n in names)
        for names, count in groups.items()
    )
    cells = per_prompt * math.prod(shared.values())
    included = sum(
        _include_size(spec, entry) * shared.get("parent image", 1)
        for entry in spec.include
    )
    return GridSize(cells, included, _factors(spec, groups, shared), bool(spec.exclude))


def check_grid_size(spec: JobSpec, parents: int | None = None) -> GridSize:
    """The grid's size; JobSpecError when it could pass MAX_ITEMS (SPEC section 2)."""
    size = grid_size(spec, parents)
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


def build_plan(spec: JobSpec, parents: Sequence[Parent] = ()) -> Plan:
    """Expand the grid, drop `exclude` matches, add `include` cells, key each item.
    A grid that could pass MAX_ITEMS is refused before anything is expanded. A
    derived job is planned with its parent images (found by `runs.parents`)."""
    if (spec.derived is None) != (not parents):
        raise ValueError("a derived job, and only one, is planned with its parents")
    check_grid_size(spec, len(parents) if spec.derived else None)
    _check_parents(spec, parents)
    cells = [c for c in _grid(spec, len(parents)) if not _excluded(c, spec)]
    seen_cells = {_cell_id(c) for c in cells}
    for entry in spec.include:
        for cell in _include_cells(spec, entry, len(parents)):
            if _cell_id(cell) not in seen_cells:
                seen_cells.add(_cell_id(cell))
                cells.append(cell)

    items: list[Item] = []
    keys: set[str] = set()
    duplicates = 0
    for cell in cells:
        item = _make_item(spec, cell, parents, position=len(items))
        if item.key in keys:
            duplicates += 1
            continue
        keys.add(item.key)
        items.append(item)
    return Plan(items=tuple(items), duplicates=duplicates)


def item_key(request: Request, sample: int) -> str:
    """sha256 of the canonical request JSON plus the sample index (hex, 64 chars)."""
    payload = {"request": request.canonical(), "sample": sample}
    blob = _KEY_JSON.encode(payload)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def ref_label(index: int, refs: tuple[Reference, ...]) -> str:
    return "noref" if not refs else f"r{index}"


@dataclass(frozen=True, slots=True)
class _Cell:
    prompt_index: int  # -1: a rerender's parent's own prompt
    vars: tuple[tuple[str, str], ...]
    aspect_ratio: str
    image_size: str | None
    ref_set: int
    sample: int
    parent: int = -1  # index into the parents; -1: a job derived from nothing


def _grid(spec: JobSpec, parents: int) -> Iterator[_Cell]:
    for p_index, placeholders in _prompts(spec):
        var_axes = [[(n, v) for v in spec.vars[n]] for n in placeholders]
        for parent in range(parents) if parents else (-1,):
            for combo in itertools.product(*var_axes):
                for ratio, size, ref_set, sample in itertools.product(
                    spec.aspect_ratios,
                    spec.image_sizes,
                    range(len(spec.references)),
                    range(1, spec.samples + 1),
                ):
                    yield _Cell(
                        p_index, tuple(combo), ratio, size, ref_set, sample, parent
                    )


def _prompts(
    spec: JobSpec, prompt_id: str | None = None
) -> list[tuple[int, tuple[str, ...]]]:
    """(index, placeholders) of the prompts (those with `prompt_id` if given); a
    rerender has one, -1: each parent's own."""
    if _rerender(spec):
        return [(-1, ())]
    return [
        (i, p.placeholders)
        for i, p in enumerate(spec.prompts)
        if prompt_id in (None, p.id)
    ]


def _rerender(spec: JobSpec) -> bool:
    return spec.derived is not None and spec.derived.mode == "rerender"


def _cell_id(cell: _Cell) -> tuple[Any, ...]:
    return (cell.prompt_index, cell.vars, cell.aspect_ratio, cell.image_size,
            cell.ref_set, cell.sample, cell.parent)  # fmt: skip


def _matches(cell: _Cell, entry: MatrixEntry, spec: JobSpec) -> bool:
    if entry.prompt is not None and (
        cell.prompt_index < 0 or spec.prompts[cell.prompt_index].id != entry.prompt
    ):
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


def _include_cells(spec: JobSpec, entry: MatrixEntry, parents: int) -> Iterator[_Cell]:
    """Cells an include entry names: axes it leaves out take every axis value."""
    ratios = [entry.aspect_ratio] if entry.aspect_ratio else list(spec.aspect_ratios)
    sizes = [entry.image_size] if entry.image_size else list(spec.image_sizes)
    refs = (
        [entry.references]
        if entry.references is not None
        else list(range(len(spec.references)))
    )
    samples = [entry.sample] if entry.sample else list(range(1, spec.samples + 1))
    for p_index, placeholders in _prompts(spec, entry.prompt):
        var_axes = [
            [(n, entry.vars[n])] if n in entry.vars else [(n, v) for v in spec.vars[n]]
            for n in placeholders
        ]
        for parent in range(parents) if parents else (-1,):
            for combo in itertools.product(*var_axes):
                for ratio, size, ref_set, sample in itertools.product(
                    ratios, sizes, refs, samples
                ):
                    yield _Cell(
                        p_index, tuple(combo), ratio, size, ref_set, sample, parent
                    )


def _include_size(spec: JobSpec, entry: MatrixEntry) -> int:
    """How many cells `_include_cells` yields for `entry` per parent, without
    yielding them."""
    fixed = (
        1 if entry.aspect_ratio else len(spec.aspect_ratios),
        1 if entry.image_size else len(spec.image_sizes),
        1 if entry.references is not None else len(spec.references),
        1 if entry.sample else spec.samples,
    )
    per_prompt = sum(
        math.prod(1 if n in entry.vars else len(spec.vars[n]) for n in names)
        for _, names in _prompts(spec, entry.prompt)
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
    if _rerender(spec):
        prompts = "each parent's own prompt"
    axes = [counted(n, what) for what, n in shared.items() if n > 1]
    return " x ".join([prompts, *axes])


_SHOWN_PROMPT_GROUPS = 3  # groups of prompts (by the vars they use) a message names


def _make_item(
    spec: JobSpec, cell: _Cell, parents: Sequence[Parent], *, position: int
) -> Item:
    values = dict(cell.vars)
    refs = spec.all_reference_sets[cell.ref_set]
    label = ref_label(cell.ref_set, refs)
    parent = parents[cell.parent] if cell.parent >= 0 else None
    ratio = cell.aspect_ratio
    if parent is not None and ratio == PARENT_RATIO:
        ratio = parent.aspect_ratio
    history: tuple[Turn, ...] = ()
    if parent is not None and cell.prompt_index < 0:
        # rerender: the parent's own request, with no image of its making
        prompt_id, text, values = parent.prompt_id, parent.text, dict(parent.vars)
        refs, label = parent.references, parent.ref_label
    else:
        prompt = spec.prompts[cell.prompt_index]
        prompt_id, text = prompt.id, prompt.render(values)
        if parent is not None and spec.derived is not None:
            if spec.derived.mode == "edit":
                refs = (parent.file, *refs)
            else:  # continue: the parent's conversation, then this turn
                history = parent.conversation()
    request = Request(
        model=spec.model,
        text=text,
        aspect_ratio=None if ratio == "auto" else ratio,
        image_size=cell.image_size,
        references=refs,
        generation=spec.generation,
        system_instruction=spec.system_instruction,
        safety_settings=spec.safety_settings,
        tools=spec.tools,
        history=history,
        parent=None if parent is None else parent.file.sha256,
    )
    return Item(
        key=item_key(request, cell.sample),
        position=position,
        prompt_id=prompt_id,
        vars=values,
        aspect_ratio=ratio,
        image_size=cell.image_size,
        ref_set=cell.ref_set,
        ref_label=label,
        sample=cell.sample,
        request=request,
        parent=parent,
        mode=None if spec.derived is None else spec.derived.mode,
    )


def _check_parents(spec: JobSpec, parents: Sequence[Parent]) -> None:
    """Refuse parents the job's model cannot take: a kept ratio it lacks, or more
    images in one request than it accepts."""
    model = models.model_for(spec.model)
    derived = spec.derived
    if model is None or derived is None:
        return
    own = max(len(refs) for refs in spec.all_reference_sets)
    for parent in parents:
        shown = f"parent image {parent.job}/{parent.image}"
        ratio = parent.aspect_ratio
        if (
            PARENT_RATIO in spec.aspect_ratios
            and ratio != "auto"
            and ratio not in model.aspect_ratios
        ):
            raise JobSpecError(
                spec.path,
                f"aspect_ratios: parent: {shown} is {ratio}, which {spec.model} "
                f"does not take; list the ratios instead of 'parent', or leave "
                "that image out of from: marked",
                line=derived.line,
            )
        if derived.mode == "edit":
            images = 1 + own
        elif derived.mode == "continue":
            turns = parent.conversation()
            images = sum(len(turn.files) for turn in turns) + own
        else:
            images = len(parent.references)
        if images > model.max_references:
            raise JobSpecError(
                spec.path,
                f"{shown} would be sent with {images} images in one request "
                f"({derived.mode}), more than the {model.max_references} "
                f"{spec.model} takes; use fewer reference images",
                line=derived.line,
            )
