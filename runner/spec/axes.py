"""The `aspect_ratios:` and `image_sizes:` axes, and one ratio or size on its own.

Owns: reading what the user wrote for a ratio or size (as written, not as YAML 1.1
would resolve it), the supported values with a "did you mean", refusing empty or
repeated axis values, and asking `Capabilities` whether the job's model takes each
axis value. Must not know prompts, references or exclude/include.
"""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING

import yaml

from runner.spec.derived import PARENT_RATIO, parent_ratio_refused
from runner.spec.messages import show
from runner.spec.nodes import given, line_of
from runner.spec.types import SUPPORTED_ASPECT_RATIOS, SUPPORTED_IMAGE_SIZES

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.spec.capabilities import Capabilities
    from runner.spec.nodes import NodeReader


def read_aspect_ratios(
    nodes: NodeReader,
    node: yaml.Node | None,
    capabilities: Capabilities,
    *,
    parent: bool = False,
) -> tuple[str, ...]:
    """The axis; `parent` (a derived job) also takes 'parent', each parent's ratio."""
    if node is None:
        return ("1:1",)

    def read(item: yaml.Node) -> str:
        if isinstance(item, yaml.ScalarNode) and item.value == PARENT_RATIO:
            if not parent:
                raise parent_ratio_refused(nodes, item)
            return PARENT_RATIO
        ratio = read_aspect_ratio(nodes, item)
        capabilities.aspect_ratio(ratio, item)
        return ratio

    return _axis(nodes, node, "aspect_ratios", read)


def read_aspect_ratio(nodes: NodeReader, node: yaml.Node) -> str:
    # node.value, not the resolved value: YAML 1.1 reads unquoted 16:9 as the
    # base-60 integer 969.
    if not isinstance(node, yaml.ScalarNode):
        raise nodes.fail(
            f"an aspect ratio must be text like '16:9', got {given(node)}", node
        )
    written = str(node.value).strip()
    if written.lower() == "auto":
        return "auto"
    if written in SUPPORTED_ASPECT_RATIOS:
        return written
    guess = re.sub(r"\s*[xX/]\s*", ":", written)
    hint = f"; did you mean '{guess}'?" if guess in SUPPORTED_ASPECT_RATIOS else ""
    raise nodes.fail(
        f"aspect ratio {show(written)} is not supported{hint}; use one of "
        f"{', '.join(SUPPORTED_ASPECT_RATIOS)}",
        node,
    )


def read_image_sizes(
    nodes: NodeReader, node: yaml.Node | None, capabilities: Capabilities
) -> tuple[str | None, ...]:
    if node is None:
        return (None,)

    def read(item: yaml.Node) -> str:
        size = read_image_size(nodes, item)
        capabilities.image_size(size, item)
        return size

    return _axis(nodes, node, "image_sizes", read)


def read_image_size(nodes: NodeReader, node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise nodes.fail(
            f"an image size must be text like '1K', got {given(node)}", node
        )
    written = str(node.value).strip()
    if written.upper() in SUPPORTED_IMAGE_SIZES:
        return written.upper()
    raise nodes.fail(
        f"image size {show(written)} is not supported; use one of "
        f"{', '.join(SUPPORTED_IMAGE_SIZES)}",
        node,
    )


def _axis(
    nodes: NodeReader, node: yaml.Node, key: str, read: Callable[[yaml.Node], str]
) -> tuple[str, ...]:
    items = nodes.items(node)
    if not items:
        raise nodes.fail(
            f"{key} is an empty list; give at least one value or remove the key",
            node,
        )
    seen: dict[str, int | None] = {}
    for item in items:
        # Each value's problem is noted and the next value read.
        value = nodes.attempt(partial(read, item), None)
        if value is None:
            continue
        if value in seen:
            nodes.note(
                nodes.fail(
                    f"{key} lists '{value}' twice (first on line {seen[value]}); "
                    "remove one",
                    item,
                )
            )
            continue
        seen[value] = line_of(item)
    return tuple(seen)
