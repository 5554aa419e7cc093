"""`exclude` and `include` entries, checked against the job's axes.

Owns: normalising each entry into a `MatrixEntry`, refusing values that would
exclude nothing (not on the axis, a var its prompt does not use) and include
values the job's model does not take, and the new reference sets only an include
names. Must not match entries against cells: `runner.plan` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import yaml

from runner.spec.axes import read_aspect_ratio, read_image_size
from runner.spec.document import BOOL_TAG, FLOAT_TAG, INT_TAG
from runner.spec.messages import show
from runner.spec.nodes import given, is_null, line_of
from runner.spec.types import MATRIX_AXIS_KEYS, MAX_SAMPLES, MatrixEntry

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.errors import JobSpecError
    from runner.spec.capabilities import Capabilities
    from runner.spec.nodes import NodeReader
    from runner.spec.reference_sets import ReferenceSets
    from runner.spec.types import Prompt, Reference

Kind = Literal["exclude", "include"]


@dataclass(frozen=True, slots=True)
class Axes:
    """What exclude/include entries are checked against."""

    prompts: tuple[Prompt, ...]
    vars: Mapping[str, tuple[str, ...]]
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str | None, ...]
    references: tuple[tuple[Reference, ...], ...]
    samples: int
    capabilities: Capabilities  # what an include may add: what the model takes


def read_matrix(
    nodes: NodeReader,
    sets: ReferenceSets,
    node: yaml.Node | None,
    kind: Kind,
    axes: Axes,
) -> tuple[MatrixEntry, ...]:
    """The `exclude:` or `include:` list; include may add sets to `sets.extra`."""
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise nodes.fail(
            f"{kind} must be a list of mappings, e.g. "
            f"'{kind}: [{{prompt: p1, aspect_ratio: \"1:1\"}}]', "
            f"got {given(node)}",
            node,
        )
    # Each entry's problem is noted and the next entry read.
    entries = (
        nodes.attempt(partial(_entry, nodes, sets, item, kind, axes), None)
        for item in node.value
    )
    return tuple(entry for entry in entries if entry is not None)


def _entry(
    nodes: NodeReader, sets: ReferenceSets, node: yaml.Node, kind: Kind, axes: Axes
) -> MatrixEntry:
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            f"each {kind} entry must be a mapping like "
            f'{{prompt: p1, aspect_ratio: "1:1"}}, got {given(node)}',
            node,
        )
    pairs = nodes.pairs(node)
    if not pairs:
        effect = "would drop every cell" if kind == "exclude" else "adds nothing"
        raise nodes.fail(
            f"an empty {kind} entry {effect}; name at least one key, e.g. "
            "prompt: or aspect_ratio:",
            node,
        )
    valid = (*MATRIX_AXIS_KEYS, *axes.vars)
    found: dict[str, Any] = {}
    var_values: dict[str, str] = {}
    var_nodes: dict[str, yaml.Node] = {}
    for key, key_node, value_node in pairs:
        if key not in valid:
            raise nodes.unknown_key(key, key_node, valid, f"{kind} key")
        where = f"{kind} entry"
        if key == "prompt":
            prompt_id = nodes.text(value_node, "prompt")
            ids = [p.id for p in axes.prompts]
            if prompt_id not in ids:
                raise nodes.fail(
                    f"{where}: there is no prompt with id {show(prompt_id)}; "
                    f"use one of {', '.join(ids)}",
                    value_node,
                )
            found[key] = prompt_id
        elif key == "aspect_ratio":
            ratio = read_aspect_ratio(nodes, value_node)
            if kind == "exclude" and ratio not in axes.aspect_ratios:
                raise _not_on_axis(nodes, value_node, key, ratio, axes.aspect_ratios)
            axes.capabilities.aspect_ratio(ratio, value_node)
            found[key] = ratio
        elif key == "image_size":
            size = read_image_size(nodes, value_node)
            if kind == "exclude" and size not in axes.image_sizes:
                on_axis = [s for s in axes.image_sizes if s is not None]
                raise _not_on_axis(nodes, value_node, key, size, on_axis)
            axes.capabilities.image_size(size, value_node)
            found[key] = size
        elif key == "references":
            found[key] = _references(nodes, sets, value_node, kind, axes)
        elif key == "sample":
            hi = axes.samples if kind == "exclude" else MAX_SAMPLES
            found[key] = nodes.whole_number(value_node, f"{where} sample", 1, hi)
        else:
            value = nodes.text(value_node, f"{where} value of '{key}'")
            if kind == "exclude" and value not in axes.vars[key]:
                raise _not_on_axis(nodes, value_node, key, value, axes.vars[key])
            var_values[key] = value
            var_nodes[key] = key_node
    _check_var_use(nodes, kind, found.get("prompt"), var_nodes, axes)
    return MatrixEntry(vars=var_values, line=line_of(node), **found)


def _not_on_axis(
    nodes: NodeReader, node: yaml.Node, key: str, value: str, values: Sequence[str]
) -> JobSpecError:
    listed = ", ".join(values) if values else "none: that axis is not declared"
    return nodes.fail(
        f"exclude entry: {key}: {show(value)} is not one of the job's values "
        f"for {key} ({listed}), so it would exclude nothing; fix the value or "
        "remove it",
        node,
    )


def _check_var_use(
    nodes: NodeReader,
    kind: Kind,
    prompt_id: str | None,
    var_nodes: Mapping[str, yaml.Node],
    axes: Axes,
) -> None:
    """A var a matched prompt never uses makes the entry match or add nothing."""
    prompts = [p for p in axes.prompts if prompt_id in (None, p.id)]
    for var, key_node in var_nodes.items():
        if any(var in p.placeholders for p in prompts):
            continue
        if prompt_id is None:
            problem = f"no prompt uses {{{var}}}"
        else:
            problem = f"prompt '{prompt_id}' does not use {{{var}}}"
        effect = "would exclude nothing" if kind == "exclude" else "has no effect"
        message = (
            f"{kind} entry: {problem}, so '{var}:' here {effect}; remove it or "
            f"add {{{var}}} to the prompt"
        )
        if kind == "exclude":
            raise nodes.fail(message, key_node)
        nodes.warn(message, key_node)


def _references(
    nodes: NodeReader, sets: ReferenceSets, node: yaml.Node, kind: Kind, axes: Axes
) -> int:
    """An entry's reference set as an index into JobSpec.all_reference_sets."""
    count = len(axes.references)
    if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG:
        index = nodes.as_int(node)
        if 0 <= index < count:
            return index
        raise nodes.fail(
            f"{kind} entry: references index {index} is out of range; the "
            f"references axis has {count} set{'s' if count != 1 else ''}, "
            f"so use 0 to {count - 1} or write the set's paths",
            node,
        )
    if isinstance(node, yaml.ScalarNode) and node.tag in (BOOL_TAG, FLOAT_TAG):
        raise nodes.fail(
            f"{kind} entry: references must be a set's 0-based index on the "
            f"references axis or a list of image paths, got {given(node)}",
            node,
        )
    paths = [] if is_null(node) else sets.paths(node)
    wanted = tuple(abs_path for _, abs_path in paths)
    for index, refs in enumerate(axes.references):
        if tuple(r.abs_path for r in refs) == wanted:
            return index
    if kind == "exclude":
        raise nodes.fail(
            "exclude entry: this reference set is not on the references axis, so "
            "it would exclude nothing; write it exactly as under 'references:' "
            f"or use its index (0 to {count - 1})",
            node,
        )
    for position, refs in enumerate(sets.extra):
        if tuple(r.abs_path for r in refs) == wanted:
            return count + position
    sets.extra.append(sets.reference_set(node) if paths else ())
    return count + len(sets.extra) - 1
