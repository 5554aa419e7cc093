"""The `references:` key: the axis of reference-image sets, and include's extra sets.

Owns: reading a set (a list of paths, or one path) from its nodes, refusing
repeated paths and sets, asking `Capabilities` whether the job's model takes that
many images in one request, and reading each distinct file once per job. Must not
open files itself: `references` reads and checks them.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import yaml

from runner.errors import JobSpecError
from runner.spec.messages import show
from runner.spec.nodes import line_of
from runner.spec.references import (
    ImageFacts,
    ReferenceProblem,
    inspect_reference,
    locate,
)
from runner.spec.types import Reference

if TYPE_CHECKING:
    from pathlib import Path

    from runner.spec.capabilities import Capabilities
    from runner.spec.nodes import NodeReader


class ReferenceSets:
    """Reference sets of one job file; `extra` holds the sets only include names."""

    def __init__(
        self, nodes: NodeReader, base_dir: Path, capabilities: Capabilities
    ) -> None:
        self.nodes = nodes
        self.base_dir = base_dir
        self.capabilities = capabilities
        self.images: dict[Path, ImageFacts] = {}
        self.extra: list[tuple[Reference, ...]] = []

    def axis(self, node: yaml.Node | None) -> tuple[tuple[Reference, ...], ...]:
        """The `references:` axis; ((),) when the job names no reference images."""
        if node is None:
            return ((),)
        if isinstance(node, yaml.MappingNode):
            raise self.nodes.fail(
                "references must be a list of reference sets, each a list of image "
                "paths (or [] for text only), got a mapping",
                node,
            )
        items = self.nodes.items(node)
        if not items:
            # `references: []` reads naturally as "no reference images".
            return ((),)
        sets: list[tuple[Reference, ...]] = []
        seen: dict[tuple[Path, ...], int | None] = {}
        for item in items:
            # A set with a problem is noted and left out; the next set is read.
            problems = len(self.nodes.problems)
            refs = self.nodes.attempt(partial(self.reference_set, item), None)
            if refs is None or len(self.nodes.problems) > problems:
                continue
            key = tuple(r.abs_path for r in refs)
            if key in seen:
                raise self.nodes.fail(
                    "this reference set repeats the one on line "
                    f"{seen[key]}; remove one",
                    item,
                )
            seen[key] = line_of(item)
            sets.append(refs)
        return tuple(sets)

    def reference_set(self, node: yaml.Node) -> tuple[Reference, ...]:
        """A set's images; each image's problem is noted, and the set raises none
        of its own but the image count's (then the set is not read further)."""
        paths = self.paths(node)
        self.capabilities.references(len(paths), node)
        refs = (
            self.nodes.attempt(partial(self.reference, item, abs_path), None)
            for item, abs_path in paths
        )
        return tuple(ref for ref in refs if ref is not None)

    def paths(self, node: yaml.Node) -> list[tuple[yaml.Node, Path]]:
        """A set's path nodes with their resolved paths, before reading any file;
        a path with a problem is noted and left out."""
        if isinstance(node, yaml.MappingNode):
            raise self.nodes.fail(
                "a reference set must be a list of image paths (or one path), "
                "got a mapping",
                node,
            )
        out: list[tuple[yaml.Node, Path]] = []
        seen: dict[Path, int | None] = {}
        for item in self.nodes.items(node):
            # Each path's problem is noted, and the path left out.
            try:
                written = self.nodes.text(item, "a reference image path")
                abs_path = locate(self.base_dir, written)
            except ReferenceProblem as exc:
                self.nodes.note(self.nodes.fail(str(exc), item))
                continue
            except JobSpecError as exc:
                self.nodes.note(exc)
                continue
            if abs_path in seen:
                self.nodes.note(
                    self.nodes.fail(
                        f"reference image {show(written)} is listed twice in this "
                        f"set (first on line {seen[abs_path]}); remove one",
                        item,
                    )
                )
                continue
            seen[abs_path] = line_of(item)
            out.append((item, abs_path))
        return out

    def reference(self, node: yaml.Node, abs_path: Path) -> Reference:
        written = str(node.value)
        facts = self.images.get(abs_path)
        if facts is None:
            try:
                facts = inspect_reference(written, abs_path)
            except ReferenceProblem as exc:
                raise self.nodes.fail(str(exc), node) from None
            self.images[abs_path] = facts
        sha256, mime_type, width, height, size = facts
        return Reference(written, abs_path, sha256, mime_type, width, height, size)
