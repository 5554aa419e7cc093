"""Job files: what loads, what is refused before anything is sent, and the wording."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import textwrap
import zlib
from pathlib import Path

import pytest
from PIL import Image

from runner.errors import JobSpecError
from runner.models import MODELS
from runner.plan import build_plan
from runner.spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_UNKNOWN_RETRIES,
    DEFAULT_MODEL,
    MAX_REFERENCE_BYTES,
    SUPPORTED_ASPECT_RATIOS,
    TOP_LEVEL_KEYS,
    Budget,
    MatrixEntry,
    Prompt,
    load_job,
)
from runner.spec import references as references_module
from runner.spec.generation import GENERATION_FIELDS, snake_case
from tests.e2e import invoke

SPEC_EXAMPLE = """\
name: routing-banners            # optional; default: the file's stem.
model: gemini-3.1-flash-image-preview
prompts:                         # strings, or {id, text}; ids default to p1, p2, ...
  - id: banner
    text: "A {style} banner about AI model routing"
  - "A cat astronaut, {style}"
vars:                            # optional axes substituted into {placeholders}
  style: [flat vector, isometric 3D]
aspect_ratios: ["21:9", "1:1"]   # axis, default ["1:1"]
image_sizes: ["1K"]              # axis, optional
references:                      # axis of reference-image sets; [] = text only
  - []
  - [refs/logo.png, refs/palette.jpg]   # paths relative to the job file
samples: 2                       # independent repeats of every cell
generation: {temperature: 0.7}   # merged into generationConfig
system_instruction: "..."        # optional
safety_settings: []              # optional, passed through
exclude: [{prompt: banner, aspect_ratio: "1:1"}]   # drop matching cells
include: [{prompt: banner, aspect_ratio: "8:1"}]   # add or extend cells
concurrency: 8                   # default; the CLI flag wins
max_attempts: 5                  # per item, all causes together
max_unknown_retries: 1
budget: {max_requests: 500}      # stop dispatching past it
"""


# -- helpers -------------------------------------------------------------------


def write_job(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def make_image(
    path: Path, size: tuple[int, int] = (16, 8), fmt: str = "PNG", noise: bool = False
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 30, 30))
    image.save(path, format=fmt)
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    Image.new("1", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def unreadable_file(tmp_path: Path) -> Path:
    """A regular file that open() refuses with EACCES, for root too.

    Root bypasses file modes, so a chmod 0 file proves nothing in CI (run as
    root). A write-only sysctl is the exception: procfs checks its mode for root
    as well, so stat() succeeds and open() is denied, as for a chmod 0 file.
    Without /proc (not Linux), a chmod 0 file serves a user who is not root.
    """
    path = Path("/proc/sys/vm/drop_caches")  # mode 0200 on every Linux
    if not path.exists():
        path = tmp_path / "unreadable.yaml"
        path.write_text(minimal(), encoding="utf-8")
        path.chmod(0)
    with pytest.raises(PermissionError):  # the premise, checked, never skipped
        path.open("rb").close()
    return path


def refused(path: Path) -> JobSpecError:
    with pytest.raises(JobSpecError) as info:
        load_job(path)
    return info.value


def assert_refused(path: Path, line: int | None, *hints: str) -> JobSpecError:
    """The message names the file, the line (when known) and says what to change."""
    error = refused(path)
    message = str(error)
    where = f"{path} line {line}:" if line is not None else f"{path}:"
    assert message.startswith(where), message
    assert error.line == line
    assert error.exit_code == 2
    for hint in hints:
        assert hint in message, f"{hint!r} not in {message!r}"
    return error


def minimal(body: str = "") -> str:
    return 'prompts: ["A cat"]\n' + textwrap.dedent(body)


# -- the file itself -----------------------------------------------------------


def test_a_missing_job_file_is_refused(tmp_path: Path) -> None:
    assert_refused(tmp_path / "nope.yaml", None, "no such job file", "check the path")


def test_a_directory_is_not_a_job_file(tmp_path: Path) -> None:
    folder = tmp_path / "jobs.yaml"
    folder.mkdir()
    assert_refused(folder, None, "is a folder", ".yaml file")


def test_an_unreadable_job_file_is_refused(tmp_path: Path) -> None:
    path = unreadable_file(tmp_path)
    assert_refused(path, None, "permission denied", "fix its permissions")


def test_a_job_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("# " + "x" * (1024 * 1024) + "\n"))
    assert_refused(path, None, "larger than 1 MiB", "shorten it")


def test_a_job_file_that_is_not_utf8_is_refused_at_the_bad_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b'prompts:\n  - "caf\xe9"\n')
    assert_refused(path, 2, "not UTF-8", "save it as UTF-8")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_job_file_is_refused(tmp_path: Path, text: str) -> None:
    assert_refused(write_job(tmp_path, text), None, "empty", "prompts:")


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, "- A cat\n- A dog\n")
    assert_refused(path, 1, "top level must be a mapping", "got a list")


# -- YAML syntax and its traps -------------------------------------------------


def test_malformed_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write_job(tmp_path, "name: ok\nprompts: [a, b\nsamples: 2\n: x\n")
    assert_refused(path, 3, "not valid YAML", "quotes on this line and the one above")


def test_an_unclosed_quote_is_reported_where_it_opens(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'name: ok\nprompts:\n  - "A cat\nsamples: 2\n')
    assert_refused(path, 3, "not valid YAML", "quoted scalar")


def test_a_second_yaml_document_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("---\nprompts: [b]\n"))
    assert_refused(path, 2, "remove the '---' line")


def test_unquoted_colon_in_a_value_gets_a_quoting_hint(tmp_path: Path) -> None:
    path = write_job(tmp_path, "prompts:\n  - text: a: b\n")
    assert_refused(path, 2, "not valid YAML", "quotes")


def test_tab_indentation_gets_a_spaces_hint(tmp_path: Path) -> None:
    path = write_job(tmp_path, "prompts:\n\t- A cat\n")
    assert_refused(path, 2, "not valid YAML", "spaces, not tabs")


def test_an_alias_bomb_is_refused_at_its_first_anchor(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = write_job(tmp_path, minimal("\n".join(lines) + "\n"))
    assert_refused(path, 2, "anchors and aliases (& and *) are not supported")


def test_an_ordinary_alias_is_refused_too(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts:
          - &cat "A cat"
          - *cat
        """,
    )
    assert_refused(path, 2, "anchors and aliases", "write the values out")


def test_a_duplicate_top_level_key_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("samples: 1\nsamples: 2\n"))
    assert_refused(path, 3, "duplicate key 'samples'", "first given on line 2")


def test_a_duplicate_nested_key_is_refused(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        minimal("generation:\n  temperature: 0.5\n  temperature: 0.9\n"),
    )
    assert_refused(path, 4, "duplicate key 'temperature'", "keep only one")


def test_python_object_tags_are_refused(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        minimal('name: !!python/object/apply:os.system ["echo hi"]\n'),
    )
    assert_refused(path, 2, "YAML tag", "not supported")


def test_absurdly_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("generation: " + "[" * 200 + "]" * 200 + "\n"))
    assert_refused(path, 2, "nested more than", "flatten")


# -- keys ----------------------------------------------------------------------


def test_an_unknown_top_level_key_suggests_the_closest_one(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'promts: ["A cat"]\n')
    assert_refused(
        path, 1, "unknown key 'promts'", "did you mean 'prompts'?", "aspect_ratios"
    )


def test_an_unknown_key_in_a_prompt_mapping_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, "prompts:\n  - id: a\n    txt: A cat\n")
    assert_refused(path, 3, "unknown prompt key 'txt'", "did you mean 'text'?")


def test_an_unknown_budget_key_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("budget: {max_request: 5}\n"))
    assert_refused(path, 2, "unknown budget key", "did you mean 'max_requests'?")


def test_an_unknown_exclude_key_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("exclude:\n  - aspect: '1:1'\n"))
    assert_refused(path, 3, "unknown exclude key 'aspect'", "aspect_ratio")


def test_prompts_are_required(tmp_path: Path) -> None:
    path = write_job(tmp_path, "samples: 2\n")
    assert_refused(path, None, "no 'prompts:' list", "add one")


@pytest.mark.parametrize(
    "body", ["prompts: []\n", "prompts:\n", "prompts: ~\n"], ids=["[]", "blank", "~"]
)
def test_an_empty_prompt_list_is_refused(tmp_path: Path, body: str) -> None:
    assert_refused(write_job(tmp_path, body), 1, "prompts is empty", "add at least")


def test_an_empty_prompt_text_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'prompts:\n  - "A cat"\n  - "   "\n')
    assert_refused(path, 3, "prompt 'p2' is empty", "write the prompt text")


def test_a_prompt_mapping_without_text_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, "prompts:\n  - id: cat\n")
    assert_refused(path, 2, "no 'text:'", "add the prompt text")


def test_duplicate_prompt_ids_are_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'prompts:\n  - {id: p2, text: A}\n  - "B"\n')
    assert_refused(path, 3, "prompt id 'p2' is used twice", "its own id")


# -- numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("samples: two", "samples must be a whole number from 1 to 1000, got 'two'"),
        ("samples: true", "samples must be a whole number from 1 to 1000, got true"),
        ("samples: yes", "got yes (a yes/no value)"),
        ("samples: 2.5", "samples must be a whole number from 1 to 1000, got 2.5"),
        ("samples: 0", "got 0"),
        ("samples: 1001", "got 1001"),
        ("samples: [1]", "got a list"),
        ('samples: "2"', "write it without quotes"),
        ("concurrency: 0", "concurrency must be a whole number from 1 to 1024"),
        ("concurrency: 1025", "got 1025"),
        ("concurrency: on", "got on (a yes/no value)"),
        ("max_attempts: 0", "max_attempts must be a whole number from 1 to 100"),
        ("max_attempts: false", "got false"),
        ("max_unknown_retries: -1", "max_unknown_retries must be a whole number"),
        ("max_unknown_retries: 11", "from 0 to 10, got 11"),
        ("max_unknown_retries: true", "got true"),
        ("budget: {max_requests: -1}", "budget.max_requests must be a whole number"),
        ("budget: {max_images: true}", "budget.max_images must be a whole number"),
        ("budget: {max_cost_usd: ten}", "budget.max_cost_usd must be a number >= 0"),
        ("budget: {max_cost_usd: true}", "got true"),
        ("budget: {max_cost_usd: .inf}", "got .inf"),
        ("budget: 500", "budget must be a mapping"),
        ("rpm: 0", "rpm (requests per minute) must be a number > 0, got 0"),
        ("rpm: false", "got false"),
        ("rpm: fast", "got 'fast'"),
    ],
)
def test_numbers_of_the_wrong_type_or_range_are_refused(
    tmp_path: Path, body: str, expected: str
) -> None:
    assert_refused(write_job(tmp_path, minimal(body + "\n")), 2, expected)


def test_a_number_too_long_to_parse_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("samples: " + "9" * 5000 + "\n"))
    assert_refused(path, 2, "is too long", "write a smaller one")


def test_numbers_within_range_are_accepted(tmp_path: Path) -> None:
    job = load_job(
        write_job(
            tmp_path,
            minimal(
                """\
                samples: 3
                concurrency: 32
                max_attempts: 9
                max_unknown_retries: 0
                budget: {max_requests: 0, max_images: 20, max_cost_usd: 2}
                rpm: 7.5
                """
            ),
        )
    )
    assert (job.samples, job.concurrency, job.max_attempts) == (3, 32, 9)
    assert job.max_unknown_retries == 0
    assert job.budget == Budget(max_requests=0, max_images=20, max_cost_usd=2.0)
    assert isinstance(job.budget.max_cost_usd, float)
    assert job.rpm == 7.5


# -- placeholders --------------------------------------------------------------


def test_an_unknown_placeholder_names_the_known_vars(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts:
          - "A {style} cat"
          - id: dog
            text: "A {colour} dog"
        vars:
          style: [flat]
          color: [red]
        """,
    )
    assert_refused(
        path,
        4,
        "prompt 'dog' uses {colour}",
        "known vars: style, color",
        "declare it under 'vars:'",
    )


def test_an_unknown_placeholder_without_any_vars_says_so(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'prompts: ["A {style} cat"]\n')
    assert_refused(path, 1, "none are declared", "{{style}} for literal braces")


def test_a_placeholder_in_a_literal_block_is_reported_at_its_own_line(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts:
          - |
            A cat.
            In the {styel} style.
        vars:
          style: [flat]
        """,
    )
    assert_refused(path, 4, "{styel}")


@pytest.mark.parametrize(
    ("template", "hint"),
    [
        ("A {} cat", "positional placeholder '{}'"),
        ("A {0} cat", "positional placeholder '{0}'"),
        ("A {style:>10} cat", "format spec in '{style:>10}'"),
        ("A {style!r} cat", "conversion in '{style!r}'"),
        ("A {style.upper} cat", "attribute or index access"),
        ("A {style[0]} cat", "attribute or index access"),
        ("A {my style} cat", "not a placeholder name"),
        ("A {style cat", "never closed"),
        ("A style} cat", "no '{' before it"),
    ],
)
def test_placeholders_other_than_plain_names_are_refused(
    tmp_path: Path, template: str, hint: str
) -> None:
    path = write_job(tmp_path, f"prompts: [{template!r}]\nvars: {{style: [flat]}}\n")
    assert_refused(path, 1, hint, "{{ and }} for literal braces")


def test_placeholders_are_listed_once_in_first_use_order(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts: ["{b} and {a}, then {b} again"]
        vars: {a: [x], b: [y]}
        """,
    )
    assert load_job(path).prompts[0].placeholders == ("b", "a")


def test_doubled_braces_are_literal_and_not_placeholders(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'prompts: ["A {{literal}} sign saying {word}"]\n'
                     "vars: {word: [hi]}\n")  # fmt: skip
    prompt = load_job(path).prompts[0]
    assert prompt.placeholders == ("word",)
    assert prompt.render({"word": "hi"}) == "A {literal} sign saying hi"


def test_render_inserts_values_with_braces_verbatim() -> None:
    prompt = Prompt(id="p1", text="A {a} and {b} }}{{", placeholders=("a", "b"))
    rendered = prompt.render({"a": "{b}", "b": "{0!r:>{x}} {{"})
    assert rendered == "A {b} and {0!r:>{x}} {{ }{"


def test_render_without_a_needed_value_names_it() -> None:
    prompt = Prompt(id="p1", text="A {style} cat", placeholders=("style",))
    with pytest.raises(KeyError, match="style"):
        prompt.render({})


# -- vars ----------------------------------------------------------------------


def test_an_empty_var_list_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("vars:\n  style: []\n"))
    assert_refused(path, 3, "var 'style' has an empty list", "remove the var")


def test_a_repeated_var_value_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, 'prompts: ["{s}"]\nvars:\n  s: [a, b, a]\n')
    assert_refused(path, 3, "lists 'a' twice", "remove one")


def test_a_var_name_that_is_not_an_identifier_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("vars:\n  my-style: [a]\n"))
    assert_refused(path, 3, "var name 'my-style'", "letters, digits and '_'")


def test_var_values_keep_their_written_text(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts: ["{price} {flag} {ratio} {n} {when}"]
        vars:
          price: [1.50, 0x1F]
          flag: [yes, off]
          ratio: 16:9
          n: 007
          when: 2024-01-01
        """,
    )
    job = load_job(path)
    assert job.vars == {
        "price": ("1.50", "0x1F"),
        "flag": ("yes", "off"),
        "ratio": ("16:9",),
        "n": ("007",),
        "when": ("2024-01-01",),
    }
    assert job.warnings == ()


def test_a_var_no_prompt_uses_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts: ["A {style} cat"]
        vars:
          style: [flat]
          mood: [calm, wild]
        """,
    )
    job = load_job(path)
    assert job.vars["mood"] == ("calm", "wild")
    assert len(job.warnings) == 1
    assert job.warnings[0].startswith(f"{path} line 4: var 'mood'")
    assert "add {mood} to a prompt or remove it" in job.warnings[0]


def test_the_planner_multiplies_each_prompt_only_over_its_own_vars(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts: ["A {style} cat", "A {mood} dog in {style}", "Plain"]
        vars:
          style: [flat, 3D]
          mood: [calm, wild, sad]
        aspect_ratios: [1:1, 16:9]
        """,
    )
    assert len(build_plan(load_job(path)).items) == (2 + 6 + 1) * 2


# -- aspect ratios and image sizes ---------------------------------------------


def test_unquoted_aspect_ratios_are_read_as_written(tmp_path: Path) -> None:
    # YAML 1.1 reads these as base-60 integers (16:9 == 969).
    path = write_job(
        tmp_path,
        """\
        prompts: ["A cat"]
        aspect_ratios:
          - 16:9
          - 21:9
          - 1:1
          - 9:16
          - auto
        """,
    )
    assert load_job(path).aspect_ratios == ("16:9", "21:9", "1:1", "9:16", "auto")


@pytest.mark.parametrize(
    ("written", "expected"),
    [("16:9", ("16:9",)), ("[4:3, 3:4]", ("4:3", "3:4")), ("AUTO", ("auto",))],
)
def test_a_single_or_flow_aspect_ratio_is_accepted(
    tmp_path: Path, written: str, expected: tuple[str, ...]
) -> None:
    path = write_job(tmp_path, minimal(f"aspect_ratios: {written}\n"))
    assert load_job(path).aspect_ratios == expected


def test_an_unsupported_aspect_ratio_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal('aspect_ratios: ["1:1", "5:3"]\n'))
    assert_refused(
        path,
        2,
        "aspect ratio '5:3' is not supported",
        "use one of " + ", ".join(SUPPORTED_ASPECT_RATIOS),
    )


def test_an_aspect_ratio_written_with_x_gets_a_suggestion(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("aspect_ratios: [16x9]\n"))
    assert_refused(path, 2, "did you mean '16:9'?")


def test_empty_or_repeated_aspect_ratios_are_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("aspect_ratios: []\n"))
    assert_refused(path, 2, "aspect_ratios is an empty list", "remove the key")
    path = write_job(tmp_path, minimal("aspect_ratios:\n  - 1:1\n  - '1:1'\n"))
    assert_refused(path, 4, "lists '1:1' twice (first on line 3)")


def test_image_sizes_are_normalised(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("image_sizes: [1k, 2K, 512, '4k']\n"))
    assert load_job(path).image_sizes == ("1K", "2K", "512", "4K")
    path = write_job(tmp_path, minimal("image_sizes: 2k\n"))
    assert load_job(path).image_sizes == ("2K",)


def test_an_unsupported_image_size_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("image_sizes: [1K, 8K]\n"))
    assert_refused(path, 2, "image size '8K' is not supported", "512, 1K, 2K, 4K")
    path = write_job(tmp_path, minimal("image_sizes: []\n"))
    assert_refused(path, 2, "image_sizes is an empty list")


# -- names, ids and models -----------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        '"../escape"',
        '"a/b"',
        '"/abs"',
        '"a\\\\b"',
        '"a\\0b"',
        '"a\\nb"',
        '"a\\tb"',
        '"a\\x1bb"',
        '"a..b"',
        '".hidden"',
        '"-dash"',
        '""',
        '"' + "n" * 101 + '"',
    ],
)
def test_names_that_could_leave_the_output_folder_are_refused(
    tmp_path: Path, written: str
) -> None:
    path = write_job(tmp_path, minimal(f"name: {written}\n"))
    assert_refused(path, 2, "cannot name an output folder", "letters, digits")


@pytest.mark.parametrize("written", ['"../up"', '"a/b"', '"a\\0b"', '"a\\nb"', '"x y"'])
def test_prompt_ids_that_could_leave_the_output_folder_are_refused(
    tmp_path: Path, written: str
) -> None:
    path = write_job(tmp_path, f"prompts:\n  - id: {written}\n    text: A cat\n")
    assert_refused(path, 2, "cannot be used in file names", "letters, digits")


def test_a_bad_file_stem_without_name_asks_for_a_name(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal(), name="my job (v2).yaml")
    assert_refused(path, None, "'my job (v2)'", "add a line 'name: my-job-v2'")


def test_a_bad_file_stem_is_fine_when_name_is_given(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("name: v2\n"), name="my job (v2).yaml")
    assert load_job(path).name == "v2"


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("models/gemini-2.5-flash-image", "without 'models/'"),
        ("gemini/../../admin", "not a model id"),
        ("'gemini flash'", "not a model id"),
    ],
)
def test_model_ids_that_would_bend_the_url_are_refused(
    tmp_path: Path, written: str, hint: str
) -> None:
    assert_refused(write_job(tmp_path, minimal(f"model: {written}\n")), 2, hint)


# -- generation, system instruction, safety settings ---------------------------


def test_generation_is_passed_through_as_json_values(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        minimal(
            """\
            generation:
              temperature: 0.7
              topP: 1
              responseModalities: [TEXT, IMAGE]
              candidateCount: 1
              imageConfig: {personGeneration: ALLOW_ADULT}
              thinkingConfig: {includeThoughts: false}
            system_instruction: |
              Be bold.
            safety_settings:
              - {category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}
            """
        ),
    )
    job = load_job(path)
    assert job.generation == {
        "temperature": 0.7,
        "topP": 1,
        "responseModalities": ["TEXT", "IMAGE"],
        "candidateCount": 1,
        "imageConfig": {"personGeneration": "ALLOW_ADULT"},
        "thinkingConfig": {"includeThoughts": False},
    }
    assert job.system_instruction == "Be bold.\n"
    assert job.safety_settings == (
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
    )


@pytest.mark.parametrize(
    ("body", "line", "hint"),
    [
        ("generation: {candidateCount: 2}", 2, "use 'samples:'"),
        ("generation: {candidateCount: true}", 2, "must be 1"),
        ("generation:\n  imageConfig:\n    aspectRatio: '1:1'", 4, "'aspect_ratios:'"),
        ("generation: {imageConfig: {imageSize: 2K}}", 2, "'image_sizes:'"),
        ("generation: {temperature: .nan}", 2, "finite number"),
        ("generation: [0.7]", 2, "generation must be a mapping"),
        ("system_instruction: [a]", 2, "system_instruction must be text"),
        ("safety_settings: [BLOCK_NONE]", 2, "must be a mapping like"),
    ],
)
def test_generation_settings_runner_owns_are_refused(
    tmp_path: Path, body: str, line: int, hint: str
) -> None:
    assert_refused(write_job(tmp_path, minimal(body + "\n")), line, hint)


# -- defaults ------------------------------------------------------------------


def test_every_optional_key_has_its_default(tmp_path: Path) -> None:
    path = write_job(tmp_path, "prompts: [A cat, A dog]\n", name="cats.v1.yaml")
    job = load_job(path)
    assert job.name == "cats.v1"
    assert job.path == path.absolute()
    assert job.model == DEFAULT_MODEL
    assert [(p.id, p.text, p.placeholders) for p in job.prompts] == [
        ("p1", "A cat", ()),
        ("p2", "A dog", ()),
    ]
    assert job.vars == {}
    assert job.aspect_ratios == ("1:1",)
    assert job.image_sizes == (None,)
    assert job.references == ((),)
    assert job.extra_reference_sets == ()
    assert job.samples == 1
    assert job.generation == {}
    assert job.system_instruction is None
    assert job.safety_settings is None
    assert job.exclude == ()
    assert job.include == ()
    assert job.concurrency == DEFAULT_CONCURRENCY
    assert job.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert job.max_unknown_retries == DEFAULT_MAX_UNKNOWN_RETRIES
    assert job.budget == Budget()
    assert job.rpm is None
    assert job.warnings == ()


def test_a_key_left_blank_means_its_default(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("vars:\naspect_ratios:\nreferences:\nrpm:\n"))
    job = load_job(path)
    assert (job.vars, job.aspect_ratios, job.references, job.rpm) == (
        {},
        ("1:1",),
        ((),),
        None,
    )


def test_default_ids_count_positions_among_mixed_prompts(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts:
          - A cat
          - {id: hero, text: A hero}
          - text: A dog
          - 42
          - yes
        """,
    )
    prompts = load_job(path).prompts
    assert [(p.id, p.text, p.line) for p in prompts] == [
        ("p1", "A cat", 2),
        ("hero", "A hero", 3),
        ("p3", "A dog", 4),
        ("p4", "42", 5),
        ("p5", "yes", 6),
    ]


def test_long_and_non_ascii_prompts_load_intact(tmp_path: Path) -> None:
    long_text = "A very detailed cat. " * 5000  # about 100 kB
    path = write_job(
        tmp_path,
        f'prompts:\n  - "{long_text}"\n  - "猫の宇宙飛行士 🐱‍🚀, {{style}}"\n'
        "vars: {style: [水墨画, 🎨 watercolour]}\n",
    )
    job = load_job(path)
    assert job.prompts[0].text == long_text
    assert job.prompts[1].render({"style": "水墨画"}) == "猫の宇宙飛行士 🐱‍🚀, 水墨画"
    assert job.vars["style"] == ("水墨画", "🎨 watercolour")


# -- the SPEC example ----------------------------------------------------------


def test_the_spec_example_loads_with_the_right_values(tmp_path: Path) -> None:
    logo = make_image(tmp_path / "refs" / "logo.png", (64, 32))
    palette = make_image(tmp_path / "refs" / "palette.jpg", (40, 40), fmt="JPEG")
    path = write_job(tmp_path, SPEC_EXAMPLE)
    job = load_job(path)
    assert job.name == "routing-banners"
    assert job.model == "gemini-3.1-flash-image-preview"
    assert [(p.id, p.text, p.placeholders, p.line) for p in job.prompts] == [
        ("banner", "A {style} banner about AI model routing", ("style",), 4),
        ("p2", "A cat astronaut, {style}", ("style",), 6),
    ]
    assert job.vars == {"style": ("flat vector", "isometric 3D")}
    assert job.aspect_ratios == ("21:9", "1:1")
    assert job.image_sizes == ("1K",)
    assert job.references[0] == ()
    first, second = job.references[1]
    assert (first.path, first.abs_path, first.mime_type) == (
        "refs/logo.png",
        logo.resolve(),
        "image/png",
    )
    assert (first.width, first.height, first.size) == (64, 32, logo.stat().st_size)
    assert (second.path, second.mime_type, second.width) == (
        "refs/palette.jpg",
        "image/jpeg",
        40,
    )
    assert second.sha256 == hashlib.sha256(palette.read_bytes()).hexdigest()
    assert job.samples == 2
    assert job.generation == {"temperature": 0.7}
    assert job.system_instruction == "..."
    assert job.safety_settings == ()
    assert job.exclude == (MatrixEntry(prompt="banner", aspect_ratio="1:1", line=18),)
    assert job.include == (MatrixEntry(prompt="banner", aspect_ratio="8:1", line=19),)
    assert (job.concurrency, job.max_attempts, job.max_unknown_retries) == (8, 5, 1)
    assert job.budget == Budget(max_requests=500)
    assert job.warnings == ()
    # 2 prompts x 2 styles x 2 ratios x 2 ref sets x 2 samples, minus banner@1:1
    # (8 cells), plus banner@8:1 across its other axes (8 cells).
    assert len(build_plan(job).items) == 32 - 8 + 8


# -- reference images ----------------------------------------------------------


def refs_job(tmp_path: Path, *paths: str) -> Path:
    listed = ", ".join(repr(p) for p in paths)
    return write_job(tmp_path, minimal(f"references:\n  - [{listed}]\n"))


def test_reference_hash_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.png", (33, 17), noise=True)
    (ref,) = load_job(refs_job(tmp_path, "a.png")).references[0]
    assert ref.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert (ref.width, ref.height, ref.size) == (33, 17, image.stat().st_size)


def test_webp_references_are_accepted(tmp_path: Path) -> None:
    make_image(tmp_path / "a.webp", fmt="WEBP")
    (ref,) = load_job(refs_job(tmp_path, "a.webp")).references[0]
    assert ref.mime_type == "image/webp"


def test_the_mime_type_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    make_image(tmp_path / "photo.png", fmt="JPEG")
    (ref,) = load_job(refs_job(tmp_path, "photo.png")).references[0]
    assert ref.mime_type == "image/jpeg"


def test_relative_paths_resolve_against_the_job_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = tmp_path / "jobs"
    make_image(jobs / "refs" / "a.png")
    make_image(tmp_path / "elsewhere" / "refs" / "a.png", (5, 5))
    path = write_job(jobs, minimal("references: [refs/a.png]\n"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    (ref,) = load_job(Path("..") / "jobs" / "job.yaml").references[0]
    assert ref.path == "refs/a.png"
    assert ref.abs_path == (jobs / "refs" / "a.png").resolve()
    assert ref.width == 16
    assert path.exists()


def test_absolute_reference_paths_are_allowed(tmp_path: Path) -> None:
    image = make_image(tmp_path / "abs" / "a.png")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (ref,) = load_job(refs_job(jobs, str(image))).references[0]
    assert ref.abs_path == image.resolve()


def test_a_bare_string_is_a_set_of_one_and_empty_list_is_text_only(
    tmp_path: Path,
) -> None:
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png")
    path = write_job(tmp_path, minimal("references: [[], a.png, [a.png, b.png]]\n"))
    sets = load_job(path).references
    assert [[r.path for r in s] for s in sets] == [[], ["a.png"], ["a.png", "b.png"]]
    path = write_job(tmp_path, minimal("references: []\n"))
    assert load_job(path).references == ((),)


def test_each_distinct_reference_file_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png")
    calls: list[int] = []
    real = references_module.inspect_image

    def counting(data: bytes) -> tuple[str, int, int]:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(references_module, "inspect_image", counting)
    path = write_job(
        tmp_path, minimal("references: [a.png, [./a.png, b.png], [b.png]]\n")
    )
    sets = load_job(path).references
    assert len(calls) == 2
    assert sets[0][0].sha256 == sets[1][0].sha256


def test_a_missing_reference_is_refused(tmp_path: Path) -> None:
    path = refs_job(tmp_path, "refs/nope.png")
    assert_refused(
        path,
        3,
        "reference image 'refs/nope.png' not found",
        str(tmp_path / "refs" / "nope.png"),
        "relative to the job file's folder",
    )


def test_a_reference_path_with_a_line_break_is_refused(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal('references: ["a\\nb.png"]\n'))
    assert_refused(path, 2, "control character", "fix the path")


def test_a_directory_as_reference_is_refused(tmp_path: Path) -> None:
    (tmp_path / "refs").mkdir()
    assert_refused(refs_job(tmp_path, "refs"), 3, "is a folder", "image files inside")


def test_an_unreadable_reference_is_refused(tmp_path: Path) -> None:
    unreadable = unreadable_file(tmp_path)
    assert_refused(
        refs_job(tmp_path, str(unreadable)),
        3,
        f"reference image '{unreadable}' cannot be read (permission denied)",
        "fix its permissions",
    )


def test_a_text_file_renamed_png_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("just some notes\n")
    assert_refused(
        refs_job(tmp_path, "fake.png"), 3, "is not an image", "convert it to PNG"
    )


def test_an_empty_reference_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    assert_refused(refs_job(tmp_path, "empty.png"), 3, "empty file", "PNG or JPEG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_image_is_refused(tmp_path: Path, fmt: str) -> None:
    full = make_image(tmp_path / "full.img", (128, 128), fmt=fmt, noise=True)
    data = full.read_bytes()
    (tmp_path / "cut.img").write_bytes(data[: len(data) // 2])
    assert_refused(
        refs_job(tmp_path, "cut.img"), 3, "damaged or truncated", "export it again"
    )


@pytest.mark.parametrize(
    "size", [(8000, 8000), (10000, 10000), (20000, 20000)], ids=["64M", "100M", "400M"]
)
def test_a_decompression_bomb_is_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    bomb = png_claiming_size(tmp_path / "bomb.png", *size)
    assert bomb.stat().st_size < 100
    assert_refused(
        refs_job(tmp_path, "bomb.png"), 3, "too many pixels", "50 million", "resize it"
    )


def test_a_reference_over_the_api_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(MAX_REFERENCE_BYTES))
    assert_refused(
        refs_job(tmp_path, "big.png"), 3, "7.0 MiB", "7 MiB limit", "make it smaller"
    )


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_formats_the_api_does_not_take_are_refused(tmp_path: Path, fmt: str) -> None:
    make_image(tmp_path / "a.img", fmt=fmt)
    assert_refused(
        refs_job(tmp_path, "a.img"), 3, f"is a {fmt} image", "convert it to PNG or JPEG"
    )


def test_more_than_fourteen_references_in_a_set_are_refused(tmp_path: Path) -> None:
    names = [f"r{i}.png" for i in range(15)]
    for name in names:
        make_image(tmp_path / name)
    assert_refused(refs_job(tmp_path, *names), 3, "15 images", "at most 14")


def test_a_repeated_reference_set_is_refused(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    path = write_job(tmp_path, minimal("references:\n  - [a.png]\n  - ./a.png\n"))
    assert_refused(path, 4, "repeats the one on line 3")


# -- what the job's model takes ------------------------------------------------


PRO = "gemini-3-pro-image-preview"
FLASH_2_5 = "gemini-2.5-flash-image"


def test_a_ratio_the_model_does_not_take_is_refused_with_what_to_use(
    tmp_path: Path,
) -> None:
    path = write_job(tmp_path, minimal(f"model: {PRO}\naspect_ratios: [1:1, 8:1]\n"))
    assert_refused(
        path,
        3,
        f"{PRO} does not take aspect ratio 8:1; use one of 1:1, 2:3, 3:2, 3:4, 4:3, "
        "4:5, 5:4, 9:16, 16:9, 21:9, or use model gemini-3.1-flash-image-preview",
    )


def test_a_size_the_model_does_not_take_is_refused_with_what_to_use(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path, minimal(f"model: {PRO}\nimage_sizes:\n  - 2K\n  - 512\n")
    )
    assert_refused(
        path,
        5,
        f"{PRO} does not take image size 512; use one of 1K, 2K, 4K, or use model "
        "gemini-3.1-flash-image-preview",
    )


def test_a_model_without_a_size_setting_refuses_every_size(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal(f"model: {FLASH_2_5}\nimage_sizes: [1K]\n"))
    assert_refused(
        path,
        3,
        f"{FLASH_2_5} takes no image size setting (it makes one size); remove it, "
        "or use model gemini-3.1-flash-image-preview",
    )


def test_a_reference_set_larger_than_the_model_takes_is_refused(
    tmp_path: Path,
) -> None:
    for name in "abcd":
        make_image(tmp_path / f"{name}.png")
    body = f"model: {FLASH_2_5}\nreferences:\n  - [a.png, b.png, c.png]\n"
    assert load_job(write_job(tmp_path, minimal(body))).references[0][2].path == "c.png"
    body += "  - [a.png, b.png, c.png, d.png]\n"
    assert_refused(
        write_job(tmp_path, minimal(body)),
        5,
        f"this reference set has 4 images; {FLASH_2_5} takes at most 3 per request: "
        "split it into several sets, or use model gemini-3.1-flash-image-preview",
    )


@pytest.mark.parametrize(
    ("model", "entry", "hint"),
    [
        (PRO, "{aspect_ratio: 8:1}", f"{PRO} does not take aspect ratio 8:1"),
        (PRO, "{image_size: 512}", f"{PRO} does not take image size 512"),
        (FLASH_2_5, "{image_size: 1K}", f"{FLASH_2_5} takes no image size setting"),
        (
            FLASH_2_5,
            "{references: [a.png, b.png, c.png, d.png]}",
            f"this reference set has 4 images; {FLASH_2_5} takes at most 3",
        ),
    ],
)
def test_an_include_entry_the_model_cannot_do_is_refused(
    tmp_path: Path, model: str, entry: str, hint: str
) -> None:
    for name in "abcd":
        make_image(tmp_path / f"{name}.png")
    path = write_job(tmp_path, minimal(f"model: {model}\ninclude:\n  - {entry}\n"))
    assert_refused(path, 4, hint)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_value_a_model_takes_loads_without_a_warning(
    tmp_path: Path, model: str
) -> None:
    entry = MODELS[model]
    for index in range(entry.max_references):
        make_image(tmp_path / f"r{index}.png")
    refs = ", ".join(f"r{index}.png" for index in range(entry.max_references))
    ratios = ", ".join(f'"{r}"' for r in (*entry.aspect_ratios, "auto"))
    sizes = (
        f"image_sizes: [{', '.join(entry.image_sizes)}]\n" if entry.image_sizes else ""
    )
    body = f"model: {model}\naspect_ratios: [{ratios}]\n{sizes}references: [[{refs}]]\n"
    job = load_job(write_job(tmp_path, minimal(body)))
    assert job.aspect_ratios == (*entry.aspect_ratios, "auto")
    assert job.warnings == ()


def test_an_unknown_model_is_allowed_with_a_warning_and_only_the_general_limits(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        minimal("model: my-relay-model\naspect_ratios: [8:1]\nimage_sizes: [512]\n"),
    )
    job = load_job(path)
    assert (job.model, job.aspect_ratios, job.image_sizes) == (
        "my-relay-model",
        ("8:1",),
        ("512",),
    )
    (warning,) = job.warnings
    assert warning.startswith(f"{path} line 2: model 'my-relay-model' is not one ")
    assert "aspect ratios, image sizes and reference limit are unknown" in warning
    assert "its prices are unknown" in warning
    names = [f"r{i}.png" for i in range(15)]
    for name in names:
        make_image(tmp_path / name)
    body = "model: my-relay-model\nreferences:\n  - [" + ", ".join(names) + "]\n"
    assert_refused(
        write_job(tmp_path, minimal(body)), 4, "15 images; the API takes at most 14"
    )


def test_an_unknown_model_close_to_a_known_one_gets_a_did_you_mean(
    tmp_path: Path,
) -> None:
    path = write_job(tmp_path, minimal("model: gemini-3-pro-image-previw\n"))
    (warning,) = load_job(path).warnings
    assert "did you mean 'gemini-3-pro-image-preview'?" in warning


def test_plan_shows_the_unknown_model_warning(tmp_path: Path) -> None:
    path = write_job(tmp_path, minimal("name: relay\nmodel: my-relay-model\n"))
    out = tmp_path / "out"
    result = invoke("plan", path, "--output", out)
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stderr
    assert "model 'my-relay-model' is not one runner knows" in result.stderr
    shown = json.loads(invoke("plan", path, "--json", "--output", out).stdout)
    assert any("'my-relay-model' is not one" in w for w in shown["warnings"])
    assert shown["estimate"]["to_send"]["cost_usd"] is None


# -- generation keys -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "hint"),
    [
        ("generation: {temprature: 0.7}", 2, "did you mean 'temperature'?"),
        ("generation: {TopP: 0.9}", 2, "did you mean 'topP'?"),
        ("generation: {max_output_token: 9}", 2, "did you mean 'max_output_tokens'?"),
        ("generation: {responseModality: [IMAGE]}", 2, "'responseModalities'?"),
        (
            "generation:\n  thinkingConfig:\n    include_thought: true",
            4,
            "unknown generation.thinkingConfig key 'include_thought'; did you mean "
            "'include_thoughts'?",
        ),
        (
            "generation: {image_config: {person_generaton: ALLOW_ADULT}}",
            2,
            "did you mean 'person_generation'?",
        ),
    ],
)
def test_a_generation_key_close_to_a_field_is_refused_with_did_you_mean(
    tmp_path: Path, body: str, line: int, hint: str
) -> None:
    assert_refused(write_job(tmp_path, minimal(body + "\n")), line, hint)


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ("generation: {tools: []}", "use the top-level 'tools:' key"),
        ("generation: {safetySettings: []}", "use the top-level 'safety_settings:'"),
        ("generation: {system_instruction: x}", "top-level 'system_instruction:'"),
        ("generation: {aspectRatio: '1:1'}", "use the 'aspect_ratios:' key"),
        ("generation: {image_size: 2K}", "use the 'image_sizes:' key"),
        ("generation: {includeThoughts: true}", "belongs inside thinkingConfig"),
        ("generation: {personGeneration: ALLOW_ADULT}", "belongs inside imageConfig"),
    ],
)
def test_a_generation_key_that_belongs_elsewhere_says_where(
    tmp_path: Path, body: str, hint: str
) -> None:
    assert_refused(write_job(tmp_path, minimal(body + "\n")), 2, hint)


def test_a_generation_key_close_to_no_field_is_sent_with_a_warning(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        minimal(
            "generation:\n  temperature: 0.5\n  brandNewKnob: {level: 3}\n"
            "  thinkingConfig: {futureSwitch: true}\n"
        ),
    )
    job = load_job(path)
    assert job.generation == {
        "temperature": 0.5,
        "brandNewKnob": {"level": 3},
        "thinkingConfig": {"futureSwitch": True},
    }
    assert len(job.warnings) == 2
    first, second = job.warnings
    assert first.startswith(f"{path} line 4: generation key 'brandNewKnob' is not a ")
    assert "documented generationConfig field; it is sent as written" in first
    assert second.startswith(
        f"{path} line 5: generation.thinkingConfig key 'futureSwitch'"
    )


@pytest.mark.parametrize("field", GENERATION_FIELDS)
def test_every_documented_field_loads_in_either_casing(
    tmp_path: Path, field: str
) -> None:
    for key in (field, snake_case(field)):
        job = load_job(write_job(tmp_path, minimal(f"generation: {{{key}: 1}}\n")))
        assert job.generation == {key: 1}
        assert job.warnings == ()


# -- tools ---------------------------------------------------------------------


def test_tools_are_read_as_written(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        minimal("tools:\n  - google_search: {}\n  - {url_context: {}}\n"),
    )
    assert load_job(path).tools == ({"google_search": {}}, {"url_context": {}})
    assert load_job(write_job(tmp_path, minimal("tools: []\n"))).tools is None
    assert load_job(write_job(tmp_path, minimal())).tools is None


@pytest.mark.parametrize(
    ("body", "line", "hint"),
    [
        ("tools: {google_search: {}}", 2, "tools must be a list of tool mappings"),
        ("tools: google_search", 2, "got 'google_search'"),
        ("tools:\n  - google_search", 3, "each tools entry must be a mapping"),
        ("tools:\n  - {google_search: {}}\n  - {}", 4, "got an empty mapping"),
    ],
)
def test_tools_of_the_wrong_shape_are_refused(
    tmp_path: Path, body: str, line: int, hint: str
) -> None:
    error = assert_refused(write_job(tmp_path, minimal(body + "\n")), line, hint)
    assert "tools: [{google_search: {}}]" in str(error)


# -- exclude and include -------------------------------------------------------


MATRIX_JOB = """\
prompts:
  - {id: cat, text: "A {style} cat"}
  - {id: dog, text: "A dog"}
vars:
  style: [flat, 3D]
aspect_ratios: [1:1, 16:9]
references: [[], a.png, [a.png, b.png]]
samples: 2
"""


@pytest.fixture
def matrix_dir(tmp_path: Path) -> Path:
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png")
    make_image(tmp_path / "c.png")
    return tmp_path


def test_exclude_by_index_by_list_and_by_var(matrix_dir: Path) -> None:
    path = write_job(
        matrix_dir,
        MATRIX_JOB
        + """\
exclude:
  - references: 1
  - {references: [./a.png, b.png], prompt: dog}
  - {references: [], style: 3D, aspect_ratio: 16:9, sample: 2}
""",
    )
    job = load_job(path)
    assert job.exclude == (
        MatrixEntry(references=1, line=10),
        MatrixEntry(references=2, prompt="dog", line=11),
        MatrixEntry(
            references=0, vars={"style": "3D"}, aspect_ratio="16:9", sample=2, line=12
        ),
    )
    items = build_plan(job).items
    assert all(i.ref_set != 1 for i in items)
    assert not any(i.prompt_id == "dog" and i.ref_set == 2 for i in items)


def test_include_with_a_new_reference_set_adds_it_after_the_axis(
    matrix_dir: Path,
) -> None:
    path = write_job(
        matrix_dir,
        MATRIX_JOB
        + """\
include:
  - {prompt: cat, references: [c.png, a.png], style: watercolour}
  - {prompt: dog, references: [c.png, ./a.png], aspect_ratio: 8:1, sample: 3}
  - {references: [b.png]}
  - {references: 2}
""",
    )
    job = load_job(path)
    assert [[r.path for r in s] for s in job.extra_reference_sets] == [
        ["c.png", "a.png"],
        ["b.png"],
    ]
    assert [e.references for e in job.include] == [3, 3, 4, 2]
    assert job.include[0].vars == {"style": "watercolour"}
    assert job.include[1] == MatrixEntry(
        prompt="dog", references=3, aspect_ratio="8:1", sample=3, line=11
    )
    assert len(job.all_reference_sets) == 5
    items = build_plan(job).items
    assert any(i.ref_set == 3 and i.vars == {"style": "watercolour"} for i in items)


@pytest.mark.parametrize(
    ("entry", "hints"),
    [
        ("{prompt: bird}", ["no prompt with id 'bird'", "use one of cat, dog"]),
        ("{style: watercolour}", ["style: 'watercolour' is not one of", "flat, 3D"]),
        ("{aspect_ratio: 4:3}", ["aspect_ratio: '4:3' is not one of", "1:1, 16:9"]),
        ("{aspect_ratio: 5:3}", ["aspect ratio '5:3' is not supported"]),
        ("{image_size: 1K}", ["image_size: '1K'", "not declared"]),
        ("{sample: 3}", ["sample must be a whole number from 1 to 2, got 3"]),
        ("{sample: true}", ["got true"]),
        ("{references: 3}", ["index 3 is out of range", "0 to 2"]),
        ("{references: true}", ["0-based index", "got true"]),
        ("{references: [b.png]}", ["not on the references axis", "0 to 2"]),
        ("{references: [nope.png]}", ["not on the references axis"]),
        ("{prompt: dog, style: flat}", ["prompt 'dog' does not use {style}"]),
        ("{mood: calm}", ["unknown exclude key 'mood'", "style"]),
        ("{}", ["empty exclude entry would drop every cell"]),
        ("[cat]", ["each exclude entry must be a mapping"]),
    ],
)
def test_exclude_entries_that_match_nothing_are_refused(
    matrix_dir: Path, entry: str, hints: list[str]
) -> None:
    path = write_job(matrix_dir, MATRIX_JOB + f"exclude:\n  - {entry}\n")
    assert_refused(path, 10, *hints)


@pytest.mark.parametrize(
    ("entry", "hints"),
    [
        ("{prompt: bird}", ["no prompt with id 'bird'"]),
        ("{mood: calm}", ["unknown include key 'mood'"]),
        ("{references: [nope.png]}", ["'nope.png' not found"]),
        ("{references: [a.txt]}", ["is not an image"]),
        ("{image_size: 3K}", ["image size '3K' is not supported"]),
        ("{}", ["empty include entry adds nothing"]),
    ],
)
def test_bad_include_entries_are_refused(
    matrix_dir: Path, entry: str, hints: list[str]
) -> None:
    (matrix_dir / "a.txt").write_text("text")
    path = write_job(matrix_dir, MATRIX_JOB + f"include:\n  - {entry}\n")
    assert_refused(path, 10, *hints)


def test_include_naming_a_var_its_prompt_does_not_use_is_a_warning(
    matrix_dir: Path,
) -> None:
    path = write_job(
        matrix_dir, MATRIX_JOB + "include:\n  - {prompt: dog, style: flat}\n"
    )
    job = load_job(path)
    assert job.warnings == (
        f"{path} line 10: include entry: prompt 'dog' does not use {{style}}, so "
        "'style:' here has no effect; remove it or add {style} to the prompt",
    )


# -- messages ------------------------------------------------------------------


BAD_FILES = {
    "yaml": b"prompts: [unclosed\n",
    "utf8": b"prompts: ['\xff']\n",
    "control": b"prompts: ['a\x07b']\n",
    "alias": b"prompts: [&a x, *a]\n",
    "type": b"prompts: [a]\nsamples: {a: 1}\n",
    "png": b"prompts: [a]\nreferences: [fake.png]\n",
    "bomb": b"prompts: [a]\nreferences: [bomb.png]\n",
    "cut": b"prompts: [a]\nreferences: [cut.png]\n",
    "missing": b"prompts: [a]\nreferences: [missing.png]\n",
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_messages_never_show_tracebacks_or_exception_class_names(
    tmp_path: Path, case: str
) -> None:
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    png_claiming_size(tmp_path / "bomb.png", 30000, 30000)
    data = make_image(tmp_path / "full.png", (64, 64), noise=True).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-200])
    path = tmp_path / "job.yaml"
    path.write_bytes(BAD_FILES[case])
    message = str(refused(path))
    assert message.startswith(f"{path}")
    assert "Traceback" not in message
    assert 'File "' not in message
    assert re.search(r"\b[A-Z]\w*(Error|Exception|Warning)\b", message) is None
    assert "\n" not in message


# -- every problem at once -------------------------------------------------------


def test_every_problem_in_a_job_file_is_reported_at_once_in_line_order(
    tmp_path: Path,
) -> None:
    (tmp_path / "refs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "refs" / "logos.png")
    path = tmp_path / "job.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            prompts:
              - "A {stlye} banner"
              - "A {colour} cat, {style}"
            vars:
              style: [flat, iso, flat]
            aspect_ratios: ["1:1", "5:3"]
            references:
              - [refs/logo.png]
              - [ref/logos.png]
            samples: two
            sampels: 3
            concurrency: 0
            """
        ),
        encoding="utf-8",
    )
    error = refused(path)
    assert error.exit_code == 2 and error.line == 2
    at = f"{path} line"
    assert error.message.splitlines() == [
        f"{at} 2: prompt 'p1' uses {{stlye}} but there is no var 'stlye'; did you "
        "mean {style}? (known vars: style); declare it under 'vars:', fix the name, "
        "or write {{stlye}} for literal braces",
        f"{at} 3: prompt 'p2' uses {{colour}} but there is no var 'colour' (known "
        "vars: style); declare it under 'vars:', fix the name, or write {{colour}} "
        "for literal braces",
        f"{at} 5: var 'style' lists 'flat' twice (first on line 5); remove one",
        f"{at} 6: aspect ratio '5:3' is not supported; use one of 1:1, 1:4, 1:8, "
        "2:3, 3:2, 3:4, 4:1, 4:3, 4:5, 5:4, 8:1, 9:16, 16:9, 21:9, auto",
        f"{at} 8: reference image 'refs/logo.png' not found (looked for "
        f"'{tmp_path}/refs/logo.png'); did you mean 'refs/logos.png'? Paths are "
        "relative to the job file's folder: fix the path or add the file",
        f"{at} 9: reference image 'ref/logos.png' not found (looked for "
        f"'{tmp_path}/ref/logos.png'); did you mean 'refs/logos.png'? Paths are "
        "relative to the job file's folder: fix the path or add the file",
        f"{at} 10: samples must be a whole number from 1 to 1000, got 'two'",
        f"{at} 11: unknown key 'sampels'; did you mean 'samples'? Valid keys are: "
        + ", ".join(TOP_LEVEL_KEYS),
        f"{at} 12: concurrency must be a whole number from 1 to 1024, got 0",
    ]


def test_past_twenty_problems_the_rest_are_counted(tmp_path: Path) -> None:
    listed = "\n".join(f"  - 'A {{nope{i}}}'" for i in range(25))
    path = tmp_path / "job.yaml"
    path.write_text(f"prompts:\n{listed}\n", encoding="utf-8")
    lines = refused(path).message.splitlines()
    assert len(lines) == 21
    assert lines[19].startswith(f"{path} line 21: prompt 'p20' uses {{nope19}}")
    assert lines[20] == f"{path}: 5 more problems not shown; fix these first"


def test_a_misspelt_prompts_key_is_one_problem_not_two(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("promts: ['A cat']\n", encoding="utf-8")
    assert refused(path).message == (
        f"{path} line 1: unknown key 'promts'; did you mean 'prompts'? Valid keys "
        f"are: {', '.join(TOP_LEVEL_KEYS)}"
    )


def test_a_vars_key_that_cannot_be_read_hides_no_other_problem(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "prompts: ['A {style} cat']\nvars: [flat, iso]\nsamples: 0\n", encoding="utf-8"
    )
    # Its placeholders are not reported as undeclared: the vars are unknown.
    assert [line.split(": ")[1] for line in refused(path).message.splitlines()] == [
        "vars must be a mapping of var name to a list of values, e.g. 'vars",
        "samples must be a whole number from 1 to 1000, got 0",
    ]


def test_a_missing_reference_in_a_misspelt_folder_gets_a_did_you_mean(
    tmp_path: Path,
) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "logo.png")
    path = tmp_path / "job.yaml"
    for written, meant in (
        ("imagse/logo.png", "images/logo.png"),
        ("./images/log.png", "./images/logo.png"),
        ("pics/logo.png", None),
        ("images/palette.png", None),
    ):
        path.write_text(minimal(f"references: [[{written}]]\n"), encoding="utf-8")
        hint = f"; did you mean '{meant}'? Paths" if meant else "; paths"
        assert f"){hint} are relative" in refused(path).message, written
