"""The `from:` and `mode:` keys: a derived job takes its inputs from another job's
images (SPEC section 6).

Owns: `Derivation` (the parent job, which of its images, the mode), reading `from:`
(a job name, or `{job, marked}`) and `mode:`, the `parent` aspect ratio's name, and
what a mode refuses (`rerender` sends each parent's own prompt and references, so
`prompts:`, `vars:` and `references:` are refused with it). Must not open the
store: the runs layer finds the parent images.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from runner.spec.messages import show
from runner.spec.nodes import given, is_null, line_of
from runner.spec.types import NAME_RULE, valid_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.errors import JobSpecError
    from runner.spec.nodes import NodeReader

MODES = ("edit", "continue", "rerender")
DEFAULT_MODE = "edit"
SELECTIONS = ("star", "succeeded")  # or an explicit list of images
DEFAULT_MARKED = "star"
FROM_KEYS = ("job", "marked")
PARENT_RATIO = "parent"  # in aspect_ratios: each parent's own ratio
# Keys a rerender leaves to its parents: it sends each one's own request again.
RERENDER_REFUSES = ("prompts", "vars", "references")
# An item-key prefix in an explicit list: hex, long enough to name one item.
KEY_PREFIX = re.compile(r"[0-9a-f]{6,64}")


@dataclass(frozen=True, slots=True)
class Derivation:
    """Where a derived job's parent images come from, and what it does with them."""

    job: str  # the parent job's name
    # "star", "succeeded", or image file names and item-key prefixes
    marked: str | tuple[str, ...]
    mode: str  # one of MODES
    line: int | None = None  # of `from:`, for plan-time problems with the parents


def read_derivation(
    nodes: NodeReader, from_node: yaml.Node | None, mode_node: yaml.Node | None
) -> Derivation | None:
    """`from:` and `mode:`; None for a job that derives from nothing."""
    if from_node is None:
        if mode_node is not None:
            raise nodes.fail(
                "mode: needs 'from:', the job whose images this job derives from, "
                "e.g. 'from: {job: banners-v1, marked: succeeded}'",
                mode_node,
            )
        return None
    mode = nodes.attempt(lambda: _read_mode(nodes, mode_node), DEFAULT_MODE)
    if isinstance(from_node, yaml.ScalarNode):
        return Derivation(_read_job(nodes, from_node), DEFAULT_MARKED, mode,
                          line_of(from_node))  # fmt: skip
    if not isinstance(from_node, yaml.MappingNode):
        raise nodes.fail(
            "from must be a job name or a mapping like '{job: banners-v1, marked: "
            f"star}}', got {given(from_node)}",
            from_node,
        )
    given_keys: dict[str, yaml.Node] = {}
    for key, key_node, value_node in nodes.pairs(from_node):
        if key in FROM_KEYS:
            given_keys[key] = value_node
        else:
            nodes.note(nodes.unknown_key(key, key_node, FROM_KEYS, "from: key"))
    job_node = given_keys.get("job")
    if job_node is None or is_null(job_node):
        raise nodes.fail(
            "from: needs 'job:', the name of the job whose images this job derives "
            "from (see `runner list`)",
            from_node,
        )
    job = _read_job(nodes, job_node)
    marked = _read_marked(nodes, given_keys.get("marked"))
    return Derivation(job, marked, mode, line_of(from_node))


def refuse_for_mode(
    nodes: NodeReader, derivation: Derivation | None, keys: Mapping[str, yaml.Node]
) -> None:
    """Note a problem for each key the mode leaves to the parents (`keys`: the
    top-level keys given, by name, with their key nodes)."""
    if derivation is None or derivation.mode != "rerender":
        return
    for key in RERENDER_REFUSES:
        if key in keys:
            nodes.note(
                nodes.fail(
                    f"{key}: is not used with 'mode: rerender', which sends each "
                    "parent's own prompt and references again; remove it, or use "
                    "'mode: edit' to send the parents with new prompts",
                    keys[key],
                )
            )


def parent_ratio_refused(nodes: NodeReader, node: yaml.Node) -> JobSpecError:
    """The `parent` aspect ratio in a job that derives from nothing."""
    return nodes.fail(
        f"aspect ratio '{PARENT_RATIO}' keeps each parent image's ratio, and needs "
        "'from:' (a derived job); use a ratio such as '1:1'",
        node,
    )


def _read_job(nodes: NodeReader, node: yaml.Node) -> str:
    job = nodes.text(node, "from: job")
    if not valid_name(job):
        raise nodes.fail(
            f"from: job {show(job)} is not a job name ({NAME_RULE}); see "
            "`runner list` for the jobs in the store",
            node,
        )
    return job


def _read_mode(nodes: NodeReader, node: yaml.Node | None) -> str:
    if node is None:
        return DEFAULT_MODE
    mode = nodes.text(node, "mode").strip()
    if mode in MODES:
        return mode
    close = difflib.get_close_matches(mode, MODES, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise nodes.fail(
        f"mode {show(mode)} is not a mode; {hint}use one of {', '.join(MODES)}",
        node,
    )


def _read_marked(nodes: NodeReader, node: yaml.Node | None) -> str | tuple[str, ...]:
    if node is None or is_null(node):
        return DEFAULT_MARKED
    if isinstance(node, yaml.ScalarNode):
        marked = nodes.text(node, "from: marked").strip()
        if marked in SELECTIONS:
            return marked
        raise nodes.fail(
            f"from: marked {show(marked)} is not a selection; use star, succeeded, "
            "or a list of image file names or item-key prefixes, e.g. "
            "[p1_1x1_noref_s1_3fa9c2d1.png, 3fa9c2d1]",
            node,
        )
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise nodes.fail(
            "from: marked must be star, succeeded, or a non-empty list of image "
            f"file names or item-key prefixes, got {given(node)}",
            node,
        )
    names: dict[str, int | None] = {}
    for item in node.value:
        name = nodes.text(item, "an image in from: marked").strip()
        if not name:
            nodes.note(nodes.fail("an image name in from: marked is empty", item))
        elif name in names:
            nodes.note(
                nodes.fail(
                    f"from: marked lists {show(name)} twice (first on line "
                    f"{names[name]}); remove one",
                    item,
                )
            )
        elif "." not in name and not KEY_PREFIX.fullmatch(name):
            nodes.note(
                nodes.fail(
                    f"from: marked {show(name)} is neither an image file name "
                    "(with its extension) nor an item-key prefix (6 or more "
                    "lowercase hex digits)",
                    item,
                )
            )
        else:
            names[name] = line_of(item)
    return tuple(names)
