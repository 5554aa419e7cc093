"""Typed values out of YAML nodes, with file:line messages when they do not fit.

Owns: what a node says about itself (line, null, how to describe it in "got ..."),
and `NodeReader`, the generic readers every key uses: mappings without duplicate
keys, unknown keys with a "did you mean", text, whole numbers, numbers, plain JSON
values, the job's warnings, and its problems: a reader that fails is noted and
reading goes on, so that every problem is reported at once. Must not know which
keys a job file has.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from runner.errors import JobSpecError, JobSpecErrors
from runner.spec.document import (
    BOOL_TAG,
    FLOAT_TAG,
    INT_TAG,
    NULL_TAG,
    STR_TAG,
    YAML_TAG_PREFIX,
)
from runner.spec.messages import show

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")


def line_of(node: yaml.Node | None) -> int | None:
    """The 1-based line a node starts on, None when unknown."""
    if node is None or node.start_mark is None:
        return None
    return int(node.start_mark.line) + 1


def line_in(node: yaml.Node, text: str, offset: int) -> int | None:
    """Line of `offset` in a scalar; exact for literal blocks, else the start line."""
    line = line_of(node)
    if line is not None and isinstance(node, yaml.ScalarNode) and node.style == "|":
        return line + 1 + text.count("\n", 0, offset)
    return line


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def given(node: yaml.Node) -> str:
    """What the user wrote, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    if node.tag == BOOL_TAG:
        return f"{node.value} (a yes/no value)"
    if node.tag in (INT_TAG, FLOAT_TAG):
        return str(node.value)
    return show(str(node.value))


class NodeReader:
    """Generic node readers for one job file; collects its non-fatal warnings."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.warnings: list[str] = []
        self.problems: list[JobSpecError] = []

    def attempt(self, read: Callable[[], T], fallback: T) -> T:
        """`read()`; if it fails, its problem is noted and `fallback` stands in, so
        that reading goes on and finds the file's other problems too."""
        try:
            return read()
        except JobSpecErrors as several:
            self.problems.extend(several.errors)
        except JobSpecError as problem:
            self.problems.append(problem)
        return fallback

    def note(self, problem: JobSpecError) -> None:
        """A problem found without stopping (see `attempt`)."""
        self.problems.append(problem)

    def raise_problems(self) -> None:
        """Raise what was noted: one problem as itself, several at once in line
        order (JobSpecErrors)."""
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            # The job file's first, then each list file's (prompts from a file);
            # in line order within a file, problems of a whole file (no line) last.
            job_file = Path(self.shown)
            ordered = sorted(
                self.problems,
                key=lambda p: (
                    p.path != job_file,
                    str(p.path),
                    p.line is None,
                    p.line or 0,
                ),
            )
            raise JobSpecErrors(ordered)

    def fail(self, message: str, node: yaml.Node | None = None) -> JobSpecError:
        return JobSpecError(self.shown, message, line=line_of(node))

    def warn(self, message: str, node: yaml.Node) -> None:
        self.warnings.append(f"{self.shown} line {line_of(node)}: {message}")

    def pairs(self, node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key text, key node, value node) of a mapping. A key that is not text,
        or repeats one, is noted as a problem and left out."""
        seen: dict[str, int | None] = {}
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.note(
                    self.fail(
                        f"a key must be plain text, got {given(key_node)}; "
                        "check the indentation",
                        key_node,
                    )
                )
                continue
            key = key_node.value
            if key in seen:
                self.note(
                    self.fail(
                        f"duplicate key {show(key)} (first given on line "
                        f"{seen[key]}); keep only one of them",
                        key_node,
                    )
                )
                continue
            seen[key] = line_of(key_node)
            out.append((key, key_node, value_node))
        return out

    def unknown_key(
        self, key: str, node: yaml.Node, valid: Sequence[str], what: str
    ) -> JobSpecError:
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f"; did you mean '{close[0]}'? Valid" if close else "; valid"
        return self.fail(
            f"unknown {what} {show(key)}{hint} keys are: {', '.join(valid)}",
            node,
        )

    def text(self, node: yaml.Node, what: str) -> str:
        """The scalar's text exactly as written, whatever YAML 1.1 would make of it."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(f"{what} must be text, got {given(node)}", node)
        return "" if is_null(node) else str(node.value)

    def items(self, node: yaml.Node) -> list[yaml.Node]:
        """A list's items; a single scalar counts as a list of one."""
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return [node]

    def as_int(self, node: yaml.ScalarNode) -> int:
        try:
            return _CONSTRUCTOR.construct_yaml_int(node)
        except ValueError:
            # Python refuses to parse integers of more than 4300 digits.
            raise self.fail(
                f"the number {show(node.value)} is too long; write a smaller one",
                node,
            ) from None

    def integer(
        self, node: yaml.Node | None, what: str, lo: int, hi: int | None, default: int
    ) -> int:
        if node is None:
            return default
        return self.whole_number(node, what, lo, hi)

    def whole_number(self, node: yaml.Node, what: str, lo: int, hi: int | None) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG:
            number = self.as_int(node)
            if number >= lo and (hi is None or number <= hi):
                return number
        wanted = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        hint = ""
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == STR_TAG
            and node.value.strip().isdigit()
        ):
            hint = " (write it without quotes)"
        raise self.fail(
            f"{what} must be a whole number {wanted}, got {given(node)}{hint}", node
        )

    def number(self, node: yaml.Node, what: str, *, positive: bool) -> float:
        if isinstance(node, yaml.ScalarNode) and node.tag in (INT_TAG, FLOAT_TAG):
            if node.tag == INT_TAG:
                number = float(self.as_int(node))
            else:
                number = _CONSTRUCTOR.construct_yaml_float(node)
            if math.isfinite(number) and (number > 0 if positive else number >= 0):
                return number
        wanted = "> 0" if positive else ">= 0"
        raise self.fail(f"{what} must be a number {wanted}, got {given(node)}", node)

    def plain(self, node: yaml.Node, where: str) -> Any:
        """A node as plain JSON values: dict, list, str, int, float, bool, None."""
        if isinstance(node, yaml.MappingNode):
            return {k: self.plain(v, f"{where}.{k}") for k, _, v in self.pairs(node)}
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(item, where) for item in node.value]
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(f"{where} has a value of an unknown kind; rewrite it", node)
        if node.tag == NULL_TAG:
            return None
        if node.tag == BOOL_TAG:
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if node.tag == INT_TAG:
            return self.as_int(node)
        if node.tag == FLOAT_TAG:
            number = _CONSTRUCTOR.construct_yaml_float(node)
            if not math.isfinite(number):
                raise self.fail(
                    f"{where} must be a finite number, got {node.value}", node
                )
            return number
        if node.tag == STR_TAG:
            return node.value
        kind = node.tag.removeprefix(YAML_TAG_PREFIX)
        raise self.fail(
            f"{where}: {show(node.value)} reads as a YAML {kind}, which has no JSON "
            "form; put it in quotes",
            node,
        )


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
