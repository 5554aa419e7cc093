"""Job file (YAML) -> frozen, validated `JobSpec`.

Owns: parsing, validation with file:line messages, placeholder rendering, resolving
reference images relative to the job file and checking them with Pillow (content hash,
mime type). Must not open the store, use the network or write anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import io
import math
import re
import stat
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from PIL import Image, UnidentifiedImageError

from runner.errors import JobSpecError
from runner.pricing import PRICE_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

DEFAULT_MODEL = "gemini-3.1-flash-image-preview"
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_UNKNOWN_RETRIES = 1
SUPPORTED_ASPECT_RATIOS = (
    "1:1", "1:4", "1:8", "2:3", "3:2", "3:4", "4:1", "4:3",
    "4:5", "5:4", "8:1", "9:16", "16:9", "21:9", "auto",
)  # fmt: skip
SUPPORTED_IMAGE_SIZES = ("512", "1K", "2K", "4K")

MAX_JOB_FILE_BYTES = 1024 * 1024
MAX_REFERENCE_BYTES = 7 * 1024 * 1024  # the API's limit for one inline image
MAX_REFERENCE_PIXELS = 50_000_000
MAX_REFERENCES_PER_SET = 14
MAX_SAMPLES = 1000
MAX_CONCURRENCY = 256
MAX_ATTEMPTS_LIMIT = 100
MAX_UNKNOWN_RETRIES_LIMIT = 10
MAX_NESTING = 50


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str  # the template, with {placeholders}
    placeholders: tuple[str, ...]  # names used, in first-use order, no duplicates
    line: int | None = None

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute {name} placeholders; '{{' and '}}' are literal braces."""
        # Not str.format: a value holding braces must go in verbatim, and the
        # template was validated at load time to hold only plain {name} fields.
        parts: list[str] = []
        for literal, name, _spec, _conversion in _FORMATTER.parse(self.text):
            parts.append(literal)
            if name is not None:
                if name not in values:
                    raise KeyError(f"prompt '{self.id}' needs a value for {{{name}}}")
                parts.append(values[name])
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class Reference:
    path: str  # as written in the job file
    abs_path: Path
    sha256: str  # hex digest of the file's bytes
    mime_type: str  # from the bytes (Pillow format), e.g. image/png
    width: int
    height: int
    size: int  # bytes


@dataclass(frozen=True, slots=True)
class Budget:
    max_requests: int | None = None
    max_images: int | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class MatrixEntry:
    """One normalised `exclude` or `include` entry; None means 'key not given'."""

    prompt: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    references: int | None = None  # 0-based index into JobSpec.all_reference_sets
    vars: Mapping[str, str] = field(default_factory=dict)
    sample: int | None = None  # 1-based
    line: int | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    path: Path
    name: str
    model: str
    prompts: tuple[Prompt, ...]
    vars: Mapping[str, tuple[str, ...]]
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str | None, ...]  # (None,) when the file names none
    references: tuple[tuple[Reference, ...], ...]  # the axis; ((),) = text only
    extra_reference_sets: tuple[tuple[Reference, ...], ...]  # only named by include
    samples: int
    generation: Mapping[str, Any]
    system_instruction: str | None
    safety_settings: tuple[Mapping[str, Any], ...] | None
    exclude: tuple[MatrixEntry, ...]
    include: tuple[MatrixEntry, ...]
    concurrency: int
    max_attempts: int
    max_unknown_retries: int
    budget: Budget
    rpm: float | None = None  # requests-per-minute cap; None = no cap
    pricing: Mapping[str, float] | None = None  # overrides of runner.pricing.PRICES
    source_sha256: str = ""  # of the job file's text: unchanged file, unchanged plan
    warnings: tuple[str, ...] = ()  # non-fatal remarks, e.g. a var no prompt uses

    @property
    def all_reference_sets(self) -> tuple[tuple[Reference, ...], ...]:
        return self.references + self.extra_reference_sets


def load_job(path: Path | str) -> JobSpec:
    """Read and validate a job file; raise JobSpecError naming file, line and fix."""
    job_path = Path(path)
    shown = str(path)
    text = _read_job_text(job_path, shown)
    root = _compose(text, shown)
    spec = _JobReader(job_path, shown).read(root)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return dataclasses.replace(spec, source_sha256=digest)


TOP_LEVEL_KEYS = (
    "name", "model", "prompts", "vars", "aspect_ratios", "image_sizes", "references",
    "samples", "generation", "system_instruction", "safety_settings", "exclude",
    "include", "concurrency", "max_attempts", "max_unknown_retries", "budget", "rpm",
    "pricing",
)  # fmt: skip
MATRIX_AXIS_KEYS = ("prompt", "aspect_ratio", "image_size", "references", "sample")
BUDGET_KEYS = ("max_requests", "max_images", "max_cost_usd")
PROMPT_KEYS = ("id", "text")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_NAME_RULE = (
    "letters, digits, '.', '_' and '-' only, starting with a letter or digit, "
    "at most 100 characters, no '..'"
)
_MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    # Phone cameras write multi-picture JPEGs that Pillow reports as MPO; the
    # bytes are still a JPEG the API accepts.
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
}
_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT = _YAML + "str", _YAML + "int", _YAML + "float"
_BOOL, _NULL = _YAML + "bool", _YAML + "null"
_ALLOWED_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _YAML + "seq", _YAML + "map"}
_ANCHOR_MESSAGE = (
    "anchors and aliases (& and *) are not supported in job files; write the values out"
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_FORMATTER = string.Formatter()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MIB = 1024 * 1024


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


def _read_job_text(path: Path, shown: str) -> str:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise JobSpecError(
            shown, "no such job file; check the path and the current folder"
        ) from None
    except PermissionError:
        raise JobSpecError(
            shown,
            "the job file cannot be read (permission denied); fix its permissions",
        ) from None
    except (OSError, ValueError) as exc:
        raise JobSpecError(
            shown, f"the job file cannot be read ({_reason(exc)}); check the path"
        ) from None
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
    except PermissionError:
        raise JobSpecError(
            shown,
            "the job file cannot be read (permission denied); fix its permissions",
        ) from None
    except OSError as exc:
        raise JobSpecError(
            shown, f"the job file cannot be read ({_reason(exc)}); check the path"
        ) from None
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


def _compose(text: str, shown: str) -> yaml.Node | None:
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
            shown, f"this is not valid YAML ({_reason(exc)}); check the file"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


@dataclass(frozen=True, slots=True)
class _Axes:
    """What exclude/include entries are checked against."""

    prompts: tuple[Prompt, ...]
    vars: Mapping[str, tuple[str, ...]]
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str | None, ...]
    references: tuple[tuple[Reference, ...], ...]
    samples: int


_ImageFacts = tuple[str, str, int, int, int]  # sha256, mime type, width, height, size


class _JobReader:
    """Turns the composed node tree into a JobSpec, one key at a time."""

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path
        self.shown = shown
        self.base_dir = path.absolute().parent
        self.warnings: list[str] = []
        self.images: dict[Path, _ImageFacts] = {}
        self.extra_sets: list[tuple[Reference, ...]] = []

    def fail(self, message: str, node: yaml.Node | None = None) -> JobSpecError:
        return JobSpecError(self.shown, message, line=_line(node))

    def read(self, root: yaml.Node | None) -> JobSpec:
        if root is None or (_is_null(root) and not root.value):
            raise self.fail(
                "the job file is empty; it needs at least a 'prompts:' list, e.g. "
                'prompts: ["A cat astronaut"]'
            )
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(
                "the top level must be a mapping of settings such as 'prompts:' and "
                f"'aspect_ratios:', got {_given(root)}",
                root,
            )
        given: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, key_node, value_node in self.pairs(root):
            if key not in TOP_LEVEL_KEYS:
                raise self.unknown_key(key, key_node, TOP_LEVEL_KEYS, "key")
            given[key] = (key_node, value_node)

        def value(key: str) -> yaml.Node | None:
            pair = given.get(key)
            # `key:` with nothing after it means "use the default", so that
            # commenting out every line under a key does not break the file.
            return None if pair is None or _is_null(pair[1]) else pair[1]

        if "prompts" not in given:
            raise self.fail(
                "the job has no 'prompts:' list; add one with at least one prompt"
            )
        name = self.name(value("name"))
        model = self.model(value("model"))
        vars_, var_nodes = self.vars(value("vars"))
        prompts_node = value("prompts")
        if prompts_node is None:
            raise self.fail(
                "prompts is empty; add at least one prompt", given["prompts"][0]
            )
        prompts = self.prompts(prompts_node, vars_)
        used = {var for p in prompts for var in p.placeholders}
        for var, key_node in var_nodes.items():
            if var not in used:
                self.warnings.append(
                    f"{self.shown} line {_line(key_node)}: var '{var}' is used by no "
                    f"prompt, so it changes nothing; add {{{var}}} to a prompt or "
                    "remove it"
                )
        aspect_ratios = self.aspect_ratios(value("aspect_ratios"))
        image_sizes = self.image_sizes(value("image_sizes"))
        references = self.reference_axis(value("references"))
        samples = self.integer(value("samples"), "samples", 1, MAX_SAMPLES, 1)
        axes = _Axes(prompts, vars_, aspect_ratios, image_sizes, references, samples)
        exclude = self.matrix(value("exclude"), "exclude", axes)
        include = self.matrix(value("include"), "include", axes)
        return JobSpec(
            path=self.path.absolute(),
            name=name,
            model=model,
            prompts=prompts,
            vars=vars_,
            aspect_ratios=aspect_ratios,
            image_sizes=image_sizes,
            references=references,
            extra_reference_sets=tuple(self.extra_sets),
            samples=samples,
            generation=self.generation(value("generation")),
            system_instruction=self.system_instruction(value("system_instruction")),
            safety_settings=self.safety_settings(value("safety_settings")),
            exclude=exclude,
            include=include,
            concurrency=self.integer(
                value("concurrency"),
                "concurrency",
                1,
                MAX_CONCURRENCY,
                DEFAULT_CONCURRENCY,
            ),
            max_attempts=self.integer(
                value("max_attempts"),
                "max_attempts",
                1,
                MAX_ATTEMPTS_LIMIT,
                DEFAULT_MAX_ATTEMPTS,
            ),
            max_unknown_retries=self.integer(
                value("max_unknown_retries"),
                "max_unknown_retries",
                0,
                MAX_UNKNOWN_RETRIES_LIMIT,
                DEFAULT_MAX_UNKNOWN_RETRIES,
            ),
            budget=self.budget(value("budget")),
            rpm=self.rpm(value("rpm")),
            pricing=self.pricing(value("pricing")),
            warnings=tuple(self.warnings),
        )

    # -- generic node readers ------------------------------------------------

    def pairs(self, node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key text, key node, value node) of a mapping; duplicate keys refused."""
        seen: dict[str, int | None] = {}
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(
                    f"a key must be plain text, got {_given(key_node)}; "
                    "check the indentation",
                    key_node,
                )
            key = key_node.value
            if key in seen:
                raise self.fail(
                    f"duplicate key {_show(key)} (first given on line {seen[key]}); "
                    "keep only one of them",
                    key_node,
                )
            seen[key] = _line(key_node)
            out.append((key, key_node, value_node))
        return out

    def unknown_key(
        self, key: str, node: yaml.Node, valid: Sequence[str], what: str
    ) -> JobSpecError:
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f"; did you mean '{close[0]}'? Valid" if close else "; valid"
        return self.fail(
            f"unknown {what} {_show(key)}{hint} keys are: {', '.join(valid)}",
            node,
        )

    def text(self, node: yaml.Node, what: str) -> str:
        """The scalar's text exactly as written, whatever YAML 1.1 would make of it."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(f"{what} must be text, got {_given(node)}", node)
        return "" if _is_null(node) else str(node.value)

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
                f"the number {_show(node.value)} is too long; write a smaller one",
                node,
            ) from None

    def integer(
        self, node: yaml.Node | None, what: str, lo: int, hi: int | None, default: int
    ) -> int:
        if node is None:
            return default
        return self.whole_number(node, what, lo, hi)

    def whole_number(self, node: yaml.Node, what: str, lo: int, hi: int | None) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
            number = self.as_int(node)
            if number >= lo and (hi is None or number <= hi):
                return number
        wanted = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        hint = ""
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == _STR
            and node.value.strip().isdigit()
        ):
            hint = " (write it without quotes)"
        raise self.fail(
            f"{what} must be a whole number {wanted}, got {_given(node)}{hint}", node
        )

    def number(self, node: yaml.Node, what: str, *, positive: bool) -> float:
        if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT):
            if node.tag == _INT:
                number = float(self.as_int(node))
            else:
                number = _CONSTRUCTOR.construct_yaml_float(node)
            if math.isfinite(number) and (number > 0 if positive else number >= 0):
                return number
        wanted = "> 0" if positive else ">= 0"
        raise self.fail(f"{what} must be a number {wanted}, got {_given(node)}", node)

    def plain(self, node: yaml.Node, where: str) -> Any:
        """A node as plain JSON values: dict, list, str, int, float, bool, None."""
        if isinstance(node, yaml.MappingNode):
            return {k: self.plain(v, f"{where}.{k}") for k, _, v in self.pairs(node)}
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(item, where) for item in node.value]
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(f"{where} has a value of an unknown kind; rewrite it", node)
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if node.tag == _INT:
            return self.as_int(node)
        if node.tag == _FLOAT:
            number = _CONSTRUCTOR.construct_yaml_float(node)
            if not math.isfinite(number):
                raise self.fail(
                    f"{where} must be a finite number, got {node.value}", node
                )
            return number
        if node.tag == _STR:
            return node.value
        kind = node.tag.removeprefix(_YAML)
        raise self.fail(
            f"{where}: {_show(node.value)} reads as a YAML {kind}, which has no JSON "
            "form; put it in quotes",
            node,
        )

    # -- top-level keys --------------------------------------------------------

    def name(self, node: yaml.Node | None) -> str:
        if node is None:
            stem = self.path.stem
            if _valid_name(stem):
                return stem
            suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
            suggestion = re.sub(r"\.{2,}", ".", suggestion).strip("-._")[:100]
            raise self.fail(
                f"the job name defaults to the file name {_show(stem)}, which cannot "
                f"name an output folder ({_NAME_RULE}); add a line "
                f"'name: {suggestion or 'my-job'}' to the job file"
            )
        name = self.text(node, "name")
        if not _valid_name(name):
            raise self.fail(
                f"name {_show(name)} cannot name an output folder; use {_NAME_RULE}",
                node,
            )
        return name

    def model(self, node: yaml.Node | None) -> str:
        if node is None:
            return DEFAULT_MODEL
        model = self.text(node, "model")
        if model.startswith("models/") and _MODEL_RE.fullmatch(model[7:]):
            raise self.fail(
                f"model {_show(model)}: write the model id without 'models/', "
                f"e.g. '{model[7:]}'",
                node,
            )
        if not _MODEL_RE.fullmatch(model):
            raise self.fail(
                f"model {_show(model)} is not a model id; use letters, digits, '.', "
                f"'_' and '-' only, e.g. '{DEFAULT_MODEL}'",
                node,
            )
        return model

    def vars(
        self, node: yaml.Node | None
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, yaml.Node]]:
        if node is None:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                "vars must be a mapping of var name to a list of values, e.g. "
                f"'vars: {{style: [flat, 3D]}}', got {_given(node)}",
                node,
            )
        values: dict[str, tuple[str, ...]] = {}
        key_nodes: dict[str, yaml.Node] = {}
        for var, key_node, value_node in self.pairs(node):
            if not var.isidentifier():
                raise self.fail(
                    f"var name {_show(var)} cannot be a placeholder; use letters, "
                    "digits and '_', not starting with a digit",
                    key_node,
                )
            if var in MATRIX_AXIS_KEYS:
                raise self.fail(
                    f"var name '{var}' is taken by an exclude/include key; "
                    "rename the var",
                    key_node,
                )
            if isinstance(value_node, yaml.SequenceNode) and not value_node.value:
                raise self.fail(
                    f"var '{var}' has an empty list; give at least one value or "
                    "remove the var",
                    value_node,
                )
            seen: dict[str, int | None] = {}
            for item in self.items(value_node):
                if not isinstance(item, yaml.ScalarNode):
                    raise self.fail(
                        f"values of var '{var}' must be text or numbers, "
                        f"got {_given(item)}",
                        item,
                    )
                if _is_null(item):
                    raise self.fail(
                        f"var '{var}' has an empty value; write '\"\"' if you mean "
                        "empty text, or remove it",
                        item,
                    )
                text = str(item.value)
                if text in seen:
                    raise self.fail(
                        f"var '{var}' lists {_show(text)} twice (first on line "
                        f"{seen[text]}); remove one",
                        item,
                    )
                seen[text] = _line(item)
            values[var] = tuple(seen)
            key_nodes[var] = key_node
        return values, key_nodes

    def prompts(
        self, node: yaml.Node, vars_: Mapping[str, tuple[str, ...]]
    ) -> tuple[Prompt, ...]:
        if isinstance(node, yaml.MappingNode):
            raise self.fail(
                "prompts must be a list of prompts (text, or 'id:' and 'text:' "
                "pairs, each on a '- ' line), got a mapping",
                node,
            )
        items = self.items(node)
        if not items:
            raise self.fail("prompts is empty; add at least one prompt", node)
        prompts: list[Prompt] = []
        seen: dict[str, int | None] = {}
        for position, item in enumerate(items, start=1):
            prompt_id, id_node, text_node = f"p{position}", item, item
            if isinstance(item, yaml.MappingNode):
                text_found = None
                for key, key_node, value_node in self.pairs(item):
                    if key == "id":
                        prompt_id = self.text(value_node, "a prompt id")
                        id_node = value_node
                        if not _valid_name(prompt_id):
                            raise self.fail(
                                f"prompt id {_show(prompt_id)} cannot be used in file "
                                f"names; use {_NAME_RULE}",
                                value_node,
                            )
                    elif key == "text":
                        text_found = value_node
                    else:
                        raise self.unknown_key(key, key_node, PROMPT_KEYS, "prompt key")
                if text_found is None:
                    raise self.fail(
                        f"prompt {position} has no 'text:'; add the prompt text", item
                    )
                text_node = text_found
            elif not isinstance(item, yaml.ScalarNode):
                raise self.fail(
                    "each prompt must be text, or a mapping with 'id:' and 'text:', "
                    f"got {_given(item)}",
                    item,
                )
            text = self.text(text_node, f"prompt '{prompt_id}'")
            if not text.strip():
                raise self.fail(
                    f"prompt '{prompt_id}' is empty; write the prompt text", text_node
                )
            if prompt_id in seen:
                raise self.fail(
                    f"prompt id '{prompt_id}' is used twice (first on line "
                    f"{seen[prompt_id]}); give each prompt its own id",
                    id_node,
                )
            seen[prompt_id] = _line(item)
            placeholders = self.placeholders(prompt_id, text, text_node, vars_)
            prompts.append(Prompt(prompt_id, text, placeholders, _line(item)))
        return tuple(prompts)

    def placeholders(
        self,
        prompt_id: str,
        text: str,
        node: yaml.Node,
        vars_: Mapping[str, tuple[str, ...]],
    ) -> tuple[str, ...]:
        try:
            found = _scan_template(text)
        except _TemplateError as exc:
            raise JobSpecError(
                self.shown,
                f"prompt '{prompt_id}' {exc.problem}",
                line=_line_in(node, text, exc.offset),
            ) from None
        names: dict[str, None] = {}
        for name, offset in found:
            if name not in vars_:
                known = ", ".join(vars_) if vars_ else "none are declared"
                raise JobSpecError(
                    self.shown,
                    f"prompt '{prompt_id}' uses {{{name}}} but there is no var "
                    f"'{name}' (known vars: {known}); declare it under 'vars:', fix "
                    f"the name, or write {{{{{name}}}}} for literal braces",
                    line=_line_in(node, text, offset),
                )
            names.setdefault(name)
        return tuple(names)

    def aspect_ratios(self, node: yaml.Node | None) -> tuple[str, ...]:
        if node is None:
            return ("1:1",)
        return self.axis(node, "aspect_ratios", self.aspect_ratio)

    def aspect_ratio(self, node: yaml.Node) -> str:
        # node.value, not the resolved value: YAML 1.1 reads unquoted 16:9 as the
        # base-60 integer 969.
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(
                f"an aspect ratio must be text like '16:9', got {_given(node)}", node
            )
        written = str(node.value).strip()
        if written.lower() == "auto":
            return "auto"
        if written in SUPPORTED_ASPECT_RATIOS:
            return written
        guess = re.sub(r"\s*[xX/]\s*", ":", written)
        hint = f"; did you mean '{guess}'?" if guess in SUPPORTED_ASPECT_RATIOS else ""
        raise self.fail(
            f"aspect ratio {_show(written)} is not supported{hint}; use one of "
            f"{', '.join(SUPPORTED_ASPECT_RATIOS)}",
            node,
        )

    def image_sizes(self, node: yaml.Node | None) -> tuple[str | None, ...]:
        if node is None:
            return (None,)
        return self.axis(node, "image_sizes", self.image_size)

    def image_size(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(
                f"an image size must be text like '1K', got {_given(node)}", node
            )
        written = str(node.value).strip()
        if written.upper() in SUPPORTED_IMAGE_SIZES:
            return written.upper()
        raise self.fail(
            f"image size {_show(written)} is not supported; use one of "
            f"{', '.join(SUPPORTED_IMAGE_SIZES)}",
            node,
        )

    def axis(
        self, node: yaml.Node, key: str, read: Callable[[yaml.Node], str]
    ) -> tuple[str, ...]:
        items = self.items(node)
        if not items:
            raise self.fail(
                f"{key} is an empty list; give at least one value or remove the key",
                node,
            )
        seen: dict[str, int | None] = {}
        for item in items:
            value = read(item)
            if value in seen:
                raise self.fail(
                    f"{key} lists '{value}' twice (first on line {seen[value]}); "
                    "remove one",
                    item,
                )
            seen[value] = _line(item)
        return tuple(seen)

    def reference_axis(
        self, node: yaml.Node | None
    ) -> tuple[tuple[Reference, ...], ...]:
        if node is None:
            return ((),)
        if isinstance(node, yaml.MappingNode):
            raise self.fail(
                "references must be a list of reference sets, each a list of image "
                "paths (or [] for text only), got a mapping",
                node,
            )
        items = self.items(node)
        if not items:
            # `references: []` reads naturally as "no reference images".
            return ((),)
        sets: list[tuple[Reference, ...]] = []
        seen: dict[tuple[Path, ...], int | None] = {}
        for item in items:
            refs = self.reference_set(item)
            key = tuple(r.abs_path for r in refs)
            if key in seen:
                raise self.fail(
                    "this reference set repeats the one on line "
                    f"{seen[key]}; remove one",
                    item,
                )
            seen[key] = _line(item)
            sets.append(refs)
        return tuple(sets)

    def reference_set(self, node: yaml.Node) -> tuple[Reference, ...]:
        paths = self.reference_paths(node)
        if len(paths) > MAX_REFERENCES_PER_SET:
            raise self.fail(
                f"this reference set has {len(paths)} images; the API takes at most "
                f"{MAX_REFERENCES_PER_SET} per request: split it into several sets",
                node,
            )
        refs = tuple(self.reference(item, abs_path) for item, abs_path in paths)
        return refs

    def reference_paths(self, node: yaml.Node) -> list[tuple[yaml.Node, Path]]:
        """A set's path nodes with their resolved paths, before reading any file."""
        if isinstance(node, yaml.MappingNode):
            raise self.fail(
                "a reference set must be a list of image paths (or one path), "
                "got a mapping",
                node,
            )
        out: list[tuple[yaml.Node, Path]] = []
        seen: dict[Path, int | None] = {}
        for item in self.items(node):
            written = self.text(item, "a reference image path")
            abs_path = self.locate(written, item)
            if abs_path in seen:
                raise self.fail(
                    f"reference image {_show(written)} is listed twice in this set "
                    f"(first on line {seen[abs_path]}); remove one",
                    item,
                )
            seen[abs_path] = _line(item)
            out.append((item, abs_path))
        return out

    def locate(self, written: str, node: yaml.Node) -> Path:
        if not written.strip():
            raise self.fail(
                "a reference image path is empty; write the path of a PNG or JPEG "
                "(or [] for a text-only set)",
                node,
            )
        if _CONTROL_RE.search(written):
            raise self.fail(
                f"reference image path {_show(written)} contains a control "
                "character (a line break or tab?); fix the path",
                node,
            )
        try:
            return (self.base_dir / Path(written).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise self.fail(
                f"reference image path {_show(written)} cannot be resolved "
                f"({_reason(exc)}); fix the path",
                node,
            ) from None

    def reference(self, node: yaml.Node, abs_path: Path) -> Reference:
        written = str(node.value)
        facts = self.images.get(abs_path)
        if facts is None:
            facts = self.inspect(written, abs_path, node)
            self.images[abs_path] = facts
        sha256, mime_type, width, height, size = facts
        return Reference(written, abs_path, sha256, mime_type, width, height, size)

    def inspect(self, written: str, abs_path: Path, node: yaml.Node) -> _ImageFacts:
        ref = f"reference image {_show(written)}"
        try:
            info = abs_path.stat()
            if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_REFERENCE_BYTES:
                with abs_path.open("rb") as handle:
                    data = handle.read(MAX_REFERENCE_BYTES + 1)
            else:
                data = b""
        except (FileNotFoundError, NotADirectoryError):
            raise self.fail(
                f"{ref} not found (looked for {_quote(str(abs_path))}); paths are "
                "relative to the "
                "job file's folder: fix the path or add the file",
                node,
            ) from None
        except PermissionError:
            raise self.fail(
                f"{ref} cannot be read (permission denied); fix its permissions", node
            ) from None
        except OSError as exc:
            raise self.fail(
                f"{ref} cannot be read ({_reason(exc)}); check the file", node
            ) from None
        if stat.S_ISDIR(info.st_mode):
            raise self.fail(
                f"{ref} is a folder, not an image file; list the image files inside "
                "it one by one",
                node,
            )
        if not stat.S_ISREG(info.st_mode):
            raise self.fail(
                f"{ref} is not a regular file; point at a PNG or JPEG file", node
            )
        size = max(info.st_size, len(data))
        if size > MAX_REFERENCE_BYTES:
            raise self.fail(
                f"{ref} is {size / _MIB:.1f} MiB, over the API's "
                f"{MAX_REFERENCE_BYTES // _MIB} MiB limit for one image; make it "
                "smaller (fewer pixels, or save it as JPEG)",
                node,
            )
        if not data:
            raise self.fail(
                f"{ref} is an empty file, not an image; convert it to PNG or JPEG",
                node,
            )
        try:
            mime_type, width, height = _inspect_image(data)
        except _ImageProblem as exc:
            raise self.fail(f"{ref} {exc}", node) from None
        return hashlib.sha256(data).hexdigest(), mime_type, width, height, len(data)

    def generation(self, node: yaml.Node | None) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                "generation must be a mapping of generationConfig fields, e.g. "
                f"'generation: {{temperature: 0.7}}', got {_given(node)}",
                node,
            )
        for key, key_node, value_node in self.pairs(node):
            if key in ("candidateCount", "candidate_count"):
                if not (
                    isinstance(value_node, yaml.ScalarNode)
                    and value_node.tag == _INT
                    and self.as_int(value_node) == 1
                ):
                    raise self.fail(
                        f"generation.{key} must be 1: runner sends one candidate per "
                        "request; use 'samples:' for more images per cell",
                        key_node,
                    )
            if key in ("imageConfig", "image_config") and isinstance(
                value_node, yaml.MappingNode
            ):
                for inner, inner_node, _ in self.pairs(value_node):
                    if inner in ("aspectRatio", "aspect_ratio"):
                        axis = "aspect_ratios"
                    elif inner in ("imageSize", "image_size"):
                        axis = "image_sizes"
                    else:
                        continue
                    raise self.fail(
                        f"generation.{key}.{inner} is set per cell by runner; use the "
                        f"'{axis}:' key instead",
                        inner_node,
                    )
        result: dict[str, Any] = self.plain(node, "generation")
        return result

    def system_instruction(self, node: yaml.Node | None) -> str | None:
        if node is None:
            return None
        text = self.text(node, "system_instruction")
        if not text.strip():
            raise self.fail(
                "system_instruction is empty; write the instruction or remove the key",
                node,
            )
        return text

    def safety_settings(
        self, node: yaml.Node | None
    ) -> tuple[dict[str, Any], ...] | None:
        if node is None:
            return None
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(
                "safety_settings must be a list of {category, threshold} mappings, "
                f"got {_given(node)}",
                node,
            )
        settings: list[dict[str, Any]] = []
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                raise self.fail(
                    "each safety_settings entry must be a mapping like "
                    "{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}, "
                    f"got {_given(item)}",
                    item,
                )
            settings.append(self.plain(item, "safety_settings"))
        return tuple(settings)

    def budget(self, node: yaml.Node | None) -> Budget:
        if node is None:
            return Budget()
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                "budget must be a mapping, e.g. 'budget: {max_requests: 500}', "
                f"got {_given(node)}",
                node,
            )
        limits: dict[str, Any] = {}
        for key, key_node, value_node in self.pairs(node):
            if key not in BUDGET_KEYS:
                raise self.unknown_key(key, key_node, BUDGET_KEYS, "budget key")
            if _is_null(value_node):
                continue
            if key == "max_cost_usd":
                limits[key] = self.number(value_node, f"budget.{key}", positive=False)
            else:
                limits[key] = self.whole_number(value_node, f"budget.{key}", 0, None)
        return Budget(**limits)

    def pricing(self, node: yaml.Node | None) -> dict[str, float] | None:
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                "pricing must be a mapping of USD per million tokens, e.g. "
                "'pricing: {output_image_per_million: 60}', "
                f"got {_given(node)}",
                node,
            )
        prices: dict[str, float] = {}
        for key, key_node, value_node in self.pairs(node):
            if key not in PRICE_KEYS:
                raise self.unknown_key(key, key_node, PRICE_KEYS, "pricing key")
            prices[key] = self.number(value_node, f"pricing.{key}", positive=False)
        return prices

    def rpm(self, node: yaml.Node | None) -> float | None:
        if node is None:
            return None
        return self.number(node, "rpm (requests per minute)", positive=True)

    # -- exclude / include -----------------------------------------------------

    def matrix(
        self,
        node: yaml.Node | None,
        kind: Literal["exclude", "include"],
        axes: _Axes,
    ) -> tuple[MatrixEntry, ...]:
        if node is None:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(
                f"{kind} must be a list of mappings, e.g. "
                f"'{kind}: [{{prompt: p1, aspect_ratio: \"1:1\"}}]', "
                f"got {_given(node)}",
                node,
            )
        return tuple(self.matrix_entry(item, kind, axes) for item in node.value)

    def matrix_entry(
        self, node: yaml.Node, kind: Literal["exclude", "include"], axes: _Axes
    ) -> MatrixEntry:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                f"each {kind} entry must be a mapping like "
                f'{{prompt: p1, aspect_ratio: "1:1"}}, got {_given(node)}',
                node,
            )
        pairs = self.pairs(node)
        if not pairs:
            effect = "would drop every cell" if kind == "exclude" else "adds nothing"
            raise self.fail(
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
                raise self.unknown_key(key, key_node, valid, f"{kind} key")
            where = f"{kind} entry"
            if key == "prompt":
                prompt_id = self.text(value_node, "prompt")
                ids = [p.id for p in axes.prompts]
                if prompt_id not in ids:
                    raise self.fail(
                        f"{where}: there is no prompt with id {_show(prompt_id)}; "
                        f"use one of {', '.join(ids)}",
                        value_node,
                    )
                found[key] = prompt_id
            elif key == "aspect_ratio":
                ratio = self.aspect_ratio(value_node)
                if kind == "exclude" and ratio not in axes.aspect_ratios:
                    raise self.not_on_axis(value_node, key, ratio, axes.aspect_ratios)
                found[key] = ratio
            elif key == "image_size":
                size = self.image_size(value_node)
                if kind == "exclude" and size not in axes.image_sizes:
                    on_axis = [s for s in axes.image_sizes if s is not None]
                    raise self.not_on_axis(value_node, key, size, on_axis)
                found[key] = size
            elif key == "references":
                found[key] = self.matrix_references(value_node, kind, axes)
            elif key == "sample":
                hi = axes.samples if kind == "exclude" else MAX_SAMPLES
                found[key] = self.whole_number(value_node, f"{where} sample", 1, hi)
            else:
                value = self.text(value_node, f"{where} value of '{key}'")
                if kind == "exclude" and value not in axes.vars[key]:
                    raise self.not_on_axis(value_node, key, value, axes.vars[key])
                var_values[key] = value
                var_nodes[key] = key_node
        self.check_var_use(kind, found.get("prompt"), var_nodes, axes)
        return MatrixEntry(vars=var_values, line=_line(node), **found)

    def not_on_axis(
        self, node: yaml.Node, key: str, value: str, values: Sequence[str]
    ) -> JobSpecError:
        listed = ", ".join(values) if values else "none: that axis is not declared"
        return self.fail(
            f"exclude entry: {key}: {_show(value)} is not one of the job's values "
            f"for {key} ({listed}), so it would exclude nothing; fix the value or "
            "remove it",
            node,
        )

    def check_var_use(
        self,
        kind: str,
        prompt_id: str | None,
        var_nodes: Mapping[str, yaml.Node],
        axes: _Axes,
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
                raise self.fail(message, key_node)
            self.warnings.append(f"{self.shown} line {_line(key_node)}: {message}")

    def matrix_references(
        self, node: yaml.Node, kind: Literal["exclude", "include"], axes: _Axes
    ) -> int:
        count = len(axes.references)
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
            index = self.as_int(node)
            if 0 <= index < count:
                return index
            raise self.fail(
                f"{kind} entry: references index {index} is out of range; the "
                f"references axis has {count} set{'s' if count != 1 else ''}, "
                f"so use 0 to {count - 1} or write the set's paths",
                node,
            )
        if isinstance(node, yaml.ScalarNode) and node.tag in (_BOOL, _FLOAT):
            raise self.fail(
                f"{kind} entry: references must be a set's 0-based index on the "
                f"references axis or a list of image paths, got {_given(node)}",
                node,
            )
        paths = [] if _is_null(node) else self.reference_paths(node)
        wanted = tuple(abs_path for _, abs_path in paths)
        for index, refs in enumerate(axes.references):
            if tuple(r.abs_path for r in refs) == wanted:
                return index
        if kind == "exclude":
            raise self.fail(
                "exclude entry: this reference set is not on the references axis, so "
                "it would exclude nothing; write it exactly as under 'references:' "
                f"or use its index (0 to {count - 1})",
                node,
            )
        for position, refs in enumerate(self.extra_sets):
            if tuple(r.abs_path for r in refs) == wanted:
                return count + position
        self.extra_sets.append(self.reference_set(node) if paths else ())
        return count + len(self.extra_sets) - 1


class _TemplateError(Exception):
    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


def _scan_template(text: str) -> list[tuple[str, int]]:
    """Placeholder names with their offsets in `text`; refuses all but {name}."""
    found: list[tuple[str, int]] = []
    offset = 0
    plain_only = (
        "only plain {name} placeholders are supported; write {{ and }} for "
        "literal braces"
    )
    try:
        for literal, name, spec, conversion in _FORMATTER.parse(text):
            # Every brace in a parsed literal was written doubled in the source.
            offset += len(literal) + literal.count("{") + literal.count("}")
            if name is None:
                continue
            written = "{" + name
            written += f"!{conversion}" if conversion else ""
            written += f":{spec}" if spec else ""
            written += "}"
            shown = _show(written)
            if name == "" or name.isdigit():
                problem = f"has a positional placeholder {shown}"
            elif conversion is not None:
                problem = f"uses a conversion in {shown}"
            elif spec:
                problem = f"uses a format spec in {shown}"
            elif "." in name or "[" in name:
                problem = f"uses attribute or index access in {shown}"
            elif not name.isidentifier():
                problem = (
                    f"has {shown}, which is not a placeholder name (a var name is "
                    "letters, digits and '_', not starting with a digit)"
                )
            else:
                found.append((name, offset))
                offset += len(written)
                continue
            raise _TemplateError(f"{problem}: {plain_only}", offset)
    except ValueError as exc:
        reason = str(exc)
        if "Single '}'" in reason:
            what = "a '}' with no '{' before it"
        elif "Single '{'" in reason or "expected '}'" in reason:
            what = "a '{' that is never closed"
        else:
            what = f"unbalanced braces ({reason})"
        raise _TemplateError(f"has {what}: {plain_only}", offset) from None
    return found


class _ImageProblem(Exception):
    """Why bytes are not a usable reference image, phrased to follow its path."""


def _inspect_image(data: bytes) -> tuple[str, int, int]:
    """(mime type, width, height) of image bytes as decided by Pillow."""
    convert = "convert it to PNG or JPEG"
    width = height = 0
    with warnings.catch_warnings():
        # Other Pillow warnings (odd EXIF, palette transparency) are harmless here;
        # a decompression-bomb warning is not.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind = image.format or "unknown"
                if kind not in _MIME_BY_FORMAT:
                    raise _ImageProblem(
                        f"is a {kind} image, which the API does not take; {convert}"
                    )
                if width * height > MAX_REFERENCE_PIXELS:
                    raise Image.DecompressionBombError(kind)
                image.verify()
            # verify() leaves the image unusable; decode it fully from scratch to
            # catch truncated pixel data that the header check cannot see.
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except _ImageProblem:
            raise
        except UnidentifiedImageError:
            raise _ImageProblem(
                f"is not an image (PNG, JPEG or WEBP expected); {convert}"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            size = f" ({width}x{height})" if width else ""
            raise _ImageProblem(
                f"has too many pixels{size}: over the "
                f"{MAX_REFERENCE_PIXELS // 1_000_000} million pixel limit (a "
                "decompression bomb?); resize it"
            ) from None
        # Pillow's decoders fail with many exception types (OSError, SyntaxError,
        # ValueError, EOFError, zlib/struct errors); all mean a damaged file.
        except Exception as exc:
            detail = " ".join(str(exc).split())[:120]
            detail = f" ({detail})" if detail else ""
            raise _ImageProblem(
                f"is damaged or truncated{detail}; export it again as PNG or JPEG"
            ) from None
    return _MIME_BY_FORMAT[kind], width, height


def _line(node: yaml.Node | None) -> int | None:
    if node is None or node.start_mark is None:
        return None
    return int(node.start_mark.line) + 1


def _line_in(node: yaml.Node, text: str, offset: int) -> int | None:
    """Line of `offset` in a scalar; exact for literal blocks, else the start line."""
    line = _line(node)
    if line is not None and isinstance(node, yaml.ScalarNode) and node.style == "|":
        return line + 1 + text.count("\n", 0, offset)
    return line


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _given(node: yaml.Node) -> str:
    """What the user wrote, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if _is_null(node):
        return "nothing"
    if node.tag == _BOOL:
        return f"{node.value} (a yes/no value)"
    if node.tag in (_INT, _FLOAT):
        return str(node.value)
    return _show(str(node.value))


def _show(text: str) -> str:
    """A user's text quoted for a message, shortened, control characters escaped."""
    if len(text) > 60:
        text = text[:57] + "..."
    return _quote(text)


def _quote(text: str) -> str:
    return repr(text)


def _valid_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None and ".." not in name


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or "unknown reason"
