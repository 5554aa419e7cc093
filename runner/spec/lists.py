"""Long lists kept in text files: `prompts: {file: prompts.txt}` and a var's values.

Owns: the `{file: PATH}` mapping, resolving PATH against the job file's folder,
reading the file within limits as UTF-8, one entry per line (surrounding spaces
removed; blank lines and lines starting with '#' skipped), and the content hash of
every file read (the job's source hash covers them, so an edited list re-plans).
Must not judge the entries: `prompts` does, at the list file's own lines.
"""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import JobSpecError
from runner.spec.messages import quote, reason, show
from runner.spec.references import near_miss
from runner.spec.types import MAX_ITEMS

if TYPE_CHECKING:
    import yaml

    from runner.spec.nodes import NodeReader

FILE_KEY = "file"
LIST_KEYS = (FILE_KEY,)
# Entries one list file may hold: each is at least one item, and a job makes at
# most MAX_ITEMS. The byte limit only stops a wrong path (a video, a dump) early.
MAX_LIST_ENTRIES = MAX_ITEMS
MAX_LIST_FILE_BYTES = 256 * 1024 * 1024
COMMENT = "#"


@dataclass(frozen=True, slots=True)
class ListFile:
    """A list file's entries, each with its 1-based line in that file."""

    shown: str  # how messages name it: the job file's folder, as given, joined
    entries: tuple[tuple[int, str], ...]

    def fail(self, message: str, line: int) -> JobSpecError:
        """A problem with one entry, at its line in the list file."""
        return JobSpecError(self.shown, message, line=line)


class ListFiles:
    """The list files of one job file, each read once; `digests` for its hash."""

    def __init__(self, nodes: NodeReader, base_dir: Path) -> None:
        self.nodes = nodes
        self.base_dir = base_dir
        self.shown_dir = Path(nodes.shown).parent
        self.digests: dict[Path, str] = {}  # absolute path -> sha256 of its bytes
        self._read: dict[Path, ListFile] = {}

    def read(self, node: yaml.MappingNode, what: str, entries: str) -> ListFile:
        """The list a `{file: PATH}` mapping names; `what` names it in messages
        ("prompts", "var 'style'"), `entries` what a line holds ("prompts")."""
        pairs = self.nodes.pairs(node)
        path_node: yaml.Node | None = None
        for key, key_node, value_node in pairs:
            if key != FILE_KEY:
                raise self.nodes.unknown_key(key, key_node, LIST_KEYS, f"{what} key")
            path_node = value_node
        if path_node is None:
            raise self.nodes.fail(
                f"{what} is a mapping without 'file:'; write a list, or "
                f"'{{file: {entries}.txt}}' to read one {entries[:-1]} per line "
                "from a file",
                node,
            )
        written = self.nodes.text(path_node, f"the {what} file path")
        abs_path = self._locate(written, what, path_node)
        listed = self._read.get(abs_path)
        if listed is None:
            listed = self._load(written, abs_path, what, entries, path_node)
            self._read[abs_path] = listed
        return listed

    def _locate(self, written: str, what: str, node: yaml.Node) -> Path:
        if not written.strip():
            raise self.nodes.fail(
                f"the {what} file path is empty; write the path of a text file", node
            )
        if _CONTROL_RE.search(written):
            raise self.nodes.fail(
                f"the {what} file path {show(written)} contains a control character "
                "(a line break?); fix the path",
                node,
            )
        try:
            return (self.base_dir / Path(written).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise self.nodes.fail(
                f"the {what} file path {show(written)} cannot be resolved "
                f"({reason(exc)}); fix the path",
                node,
            ) from None

    def _load(
        self, written: str, abs_path: Path, what: str, entries: str, node: yaml.Node
    ) -> ListFile:
        named = f"{what} file {show(written)}"

        def fail(problem: str) -> JobSpecError:
            return self.nodes.fail(f"{named} {problem}", node)

        data = self._bytes(written, abs_path, named, node)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line = data.count(b"\n", 0, exc.start) + 1
            raise fail(
                f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on its line "
                f"{bad_line} cannot be decoded); save it as UTF-8"
            ) from None
        self.digests[abs_path] = hashlib.sha256(data).hexdigest()
        shown = str(self.shown_dir / written)
        found: list[tuple[int, str]] = []
        for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
            line = raw.strip()
            if not line or line.startswith(COMMENT):
                continue
            control = _CONTROL_RE.search(line)
            if control:
                raise JobSpecError(
                    shown,
                    "this line holds a control character "
                    f"(#x{ord(control.group()):04x}); remove it",
                    line=number,
                )
            if len(found) == MAX_LIST_ENTRIES:
                raise fail(
                    f"holds more than {MAX_LIST_ENTRIES:,} {entries}; a job makes at "
                    f"most {MAX_ITEMS:,} items: split the list into several jobs"
                )
            found.append((number, line))
        if not found:
            raise fail(
                f"holds no {entries} (blank lines and lines starting with "
                f"'{COMMENT}' are skipped); write one per line"
            )
        return ListFile(shown, tuple(found))

    def _bytes(
        self, written: str, abs_path: Path, named: str, node: yaml.Node
    ) -> bytes:
        """The file's bytes, within MAX_LIST_FILE_BYTES."""
        too_big = (
            f"{named} is larger than {MAX_LIST_FILE_BYTES // _MIB} MiB; point at a "
            "text file with one entry per line"
        )
        try:
            info = abs_path.stat()
            if not stat.S_ISREG(info.st_mode):
                kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a file"
                raise self.nodes.fail(
                    f"{named} is {kind}; point at a text file with one entry per line",
                    node,
                )
            if info.st_size > MAX_LIST_FILE_BYTES:
                raise self.nodes.fail(too_big, node)
            with abs_path.open("rb") as handle:
                data = handle.read(MAX_LIST_FILE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            close = near_miss(written, abs_path)
            hint = f"; did you mean {show(close)}? Paths" if close else "; paths"
            raise self.nodes.fail(
                f"{named} not found (looked for {quote(str(abs_path))}){hint} are "
                "relative to the job file's folder: fix the path or add the file",
                node,
            ) from None
        except PermissionError:
            raise self.nodes.fail(
                f"{named} cannot be read (permission denied); fix its permissions",
                node,
            ) from None
        except OSError as exc:
            raise self.nodes.fail(
                f"{named} cannot be read ({reason(exc)}); check the file", node
            ) from None
        if len(data) > MAX_LIST_FILE_BYTES:
            raise self.nodes.fail(too_big, node)
        return data


# Tabs stay (a prompt may hold one); other C0 controls and DEL are refused, as
# YAML refuses them in the job file itself.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MIB = 1024 * 1024
