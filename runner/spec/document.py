"""The job file as one YAML document: its text, then its node tree.

Owns: reading the file within a size limit as UTF-8, and composing it with a
hardened loader (no anchors or aliases, no exotic tags, bounded nesting), with
file:line messages for every refusal. Must not interpret keys or values: the
tree keeps every scalar as written, for the key readers to judge.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import yaml

from runner.errors import JobSpecError
from runner.spec.messages import reason

if TYPE_CHECKING:
    from pathlib import Path

MAX_JOB_FILE_BYTES = 1024 * 1024
MAX_NESTING = 50

# The tags a composed node can carry; anything else is refused while composing.
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
STR_TAG, INT_TAG = YAML_TAG_PREFIX + "str", YAML_TAG_PREFIX + "int"
FLOAT_TAG, BOOL_TAG = YAML_TAG_PREFIX + "float", YAML_TAG_PREFIX + "bool"
NULL_TAG = YAML_TAG_PREFIX + "null"


def read_job_text(path: Path, shown: str) -> str:
    """The job file's text, BOM removed; refuses folders, huge files and non-UTF-8."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise JobSpecError(
            shown, "no such job file; check the path and the current folder"
        ) from None
    except (OSError, ValueError) as exc:
        raise _unreadable(shown, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise JobSpecError(
            shown, "this is a folder, not a job file; give the path of a .yaml file"
        )
    if not stat.S_ISREG(info.st_mode):
        raise JobSpecError(
            shown, "this is not a regular file; give the path of a .yaml file"
        )
    too_big = (
        f"the job file is larger than {MAX_JOB_FILE_BYTES // _MIB} MiB; "
        "a job file holds settings and prompts, not data: shorten it"
    )
    if info.st_size > MAX_JOB_FILE_BYTES:
        raise JobSpecError(shown, too_big)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JOB_FILE_BYTES + 1)
    except OSError as exc:
        raise _unreadable(shown, exc) from None
    if len(data) > MAX_JOB_FILE_BYTES:
        raise JobSpecError(shown, too_big)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobSpecError(
            shown,
            f"the job file is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be "
            "decoded); save it as UTF-8",
            line=data.count(b"\n", 0, exc.start) + 1,
        ) from None
    return text.removeprefix("\ufeff")


def compose(text: str, shown: str) -> yaml.Node | None:
    """The document's node tree (None when empty); YAML errors become file:line."""
    loader: _Loader | None = None
    try:
        # The reader checks for forbidden characters as soon as it is built.
        loader = _Loader(text, shown)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid syntax"
        mark = exc.problem_mark or exc.context_mark
        if "end of stream" in problem and exc.context_mark:
            # An unclosed quote or bracket runs to the end of the file; where it
            # was opened is the useful line.
            mark = exc.context_mark
        detail = f"{problem} ({exc.context})" if exc.context else problem
        if "\t" in problem or "'\\t'" in problem:
            hint = "indent with spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "put quotes around values that contain ': '"
        elif "another document" in problem:
            hint = "a job file holds one document: remove the '---' line"
        else:
            hint = "check the indentation and quotes on this line and the one above"
        raise JobSpecError(
            shown,
            f"this is not valid YAML: {detail}; {hint}",
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        raise JobSpecError(
            shown,
            f"the file contains a control character (#x{exc.character:04x}) that "
            "YAML does not allow; remove it",
            line=text.count("\n", 0, exc.position) + 1,
        ) from None
    except yaml.YAMLError as exc:
        raise JobSpecError(
            shown, f"this is not valid YAML ({reason(exc)}); check the file"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


_ALLOWED_TAGS = {
    STR_TAG,
    INT_TAG,
    FLOAT_TAG,
    BOOL_TAG,
    NULL_TAG,
    YAML_TAG_PREFIX + "seq",
    YAML_TAG_PREFIX + "map",
}
_ANCHOR_MESSAGE = (
    "anchors and aliases (& and *) are not supported in job files; write the values out"
)
_MIB = 1024 * 1024


def _unreadable(shown: str, exc: OSError | ValueError) -> JobSpecError:
    if isinstance(exc, PermissionError):
        return JobSpecError(
            shown,
            "the job file cannot be read (permission denied); fix its permissions",
        )
    return JobSpecError(
        shown, f"the job file cannot be read ({reason(exc)}); check the path"
    )


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, exotic tags and deep nesting.

    Checked while composing, so an alias bomb is refused at its first anchor
    instead of being expanded.
    """

    def __init__(self, stream: str, shown: str) -> None:
        super().__init__(stream)
        self._shown = shown
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise JobSpecError(self._shown, _ANCHOR_MESSAGE, line=line)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            raise JobSpecError(
                self._shown,
                f"YAML tag '{tag}' is not supported in job files; remove it "
                "(quote the value if it must stay text)",
                line=line,
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise JobSpecError(
                    self._shown,
                    f"values are nested more than {MAX_NESTING} levels deep; "
                    "flatten the structure",
                    line=line,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
