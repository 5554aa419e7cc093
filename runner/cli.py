"""The `runner` command line: click commands over the runs layer.

Owns: arguments and environment defaults (shared option decorators; RUNNER_DEBUG
checked here, the other RUNNER_* variables where they are used), the act of
asking a question at a terminal or opening a browser, starting the simulated API
for --simulate, and turning a `RunnerError` into readable lines (one per problem),
a JSON object under --json, and its exit code.
Each command parses, calls one entry point of `runner.runs`, and renders its report
with `runner.render`. The only module that exits; holds no business logic.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from click.shell_completion import CompletionItem

from runner import __version__, render, runs
from runner.errors import Interrupted, RunnerError, UsageError

if TYPE_CHECKING:
    from runner.reports import (
        Confirmation,
        Removal,
        RemovalQuestion,
        RunReport,
        Serving,
    )

F = TypeVar("F", bound=Callable[..., Any])


class _RunnerGroup(click.Group):
    """Catch `RunnerError` at the edge: one readable line, the error's exit code;
    under --json also the error as `{"error": {...}}` on stdout."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunnerError as exc:
            if _debug():
                raise
            render.error(exc, _json_asked(ctx))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if _json_asked(ctx):
                render.print_json({"error": Interrupted(render.INTERRUPTED).as_dict()})
            render.err(render.INTERRUPTED)
            ctx.exit(130)
        except click.UsageError as exc:  # click prints it on stderr, exit 2
            if _json_asked(ctx):
                render.print_json({"error": _usage_error(exc)})
            raise


@click.group(cls=_RunnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Batch image exploration with Nano Banana (Gemini image) models.

    Write a job file that declares a grid (prompts x vars x aspect ratios x image
    sizes x reference sets x samples), then submit it. Every item, attempt and
    token is recorded in a SQLite store, so a run that stopped resumes where it
    was and never pays twice for a finished image.

    Output: tables on a terminal; through a pipe, plain lines and tables as a
    header line and tab-separated rows; --json for one JSON object.

    \b
    Environment:
      RUNNER_OUTPUT       results root (--output) [default: output]
      RUNNER_DB           store URL (--db)
      RUNNER_BASE_URL     API base URL (--base-url)
      RUNNER_CONFIRM_USD  on a terminal, submit asks before a run estimated above
                          this many USD [default: 5]
      RUNNER_DEBUG        1: errors keep their traceback [default: 0]
      RUNNER_SIMULATE_FAULTS  JSON fault rules for --simulate (README)
      RUNNER_BATCH_POLL   seconds between looks at a live batch, at first (then
                          slower, up to 30 s) [default: 1]
      TOKAIFY_API_KEY     the API key for every base URL but Google's (Bearer)
      GEMINI_API_KEY      the API key for generativelanguage.googleapis.com
                          (x-goog-api-key); only the base URL's one is read
      HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY
                          a proxy for the API (never for --simulate)
      TTY_COMPATIBLE      1: output as on a terminal, 0: plain (also FORCE_COLOR,
                          NO_COLOR, COLUMNS for the width)
      BROWSER             the browser for `review --open`

    Example: runner submit jobs/demo.yaml --simulate
    """
    written = os.environ.get(DEBUG_VARIABLE, "")
    if written.strip().lower() not in (*_ON, *_OFF):
        raise UsageError(
            f"{DEBUG_VARIABLE}={written[:40]!r} is not a yes/no value; set it to 1 "
            "to show tracebacks, 0 or nothing for one-line errors"
        )


DEBUG_VARIABLE = "RUNNER_DEBUG"  # set: errors keep their traceback
DEFAULT_OUTPUT = "output"  # the results root without --output or RUNNER_OUTPUT
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in _ON


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="runner")


# -- shared options (defined once, as sqlite-utils does) ----------------------------


def store_options(f: F) -> F:
    f = click.option(
        "--db",
        "db_url",
        envvar="RUNNER_DB",
        metavar="URL",
        help="SQLAlchemy URL of the store (env RUNNER_DB) "
        "[default: sqlite:///<output>/runner.db].",
    )(f)
    f = click.option(
        "--output",
        "output",
        envvar="RUNNER_OUTPUT",
        default=DEFAULT_OUTPUT,
        show_default=True,
        # Not file_okay=False: Workspace.check_output names the folder, the
        # variable it may come from, and the fix, like every other folder problem.
        type=click.Path(path_type=Path),
        help="Results root; each job writes to <output>/<job>/ (env RUNNER_OUTPUT).",
    )(f)
    return f


def complete_job(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of a JOB argument: the names of the jobs in the store that
    --output/--db (or RUNNER_OUTPUT/RUNNER_DB) on the line name; file names when
    none matches (JOB may be a job file). Never creates a store, never fails."""
    output = ctx.params.get("output") or os.environ.get("RUNNER_OUTPUT") or "output"
    workspace = runs.Workspace(Path(output), ctx.params.get("db_url"))
    names = runs.job_names(workspace, incomplete)
    return [CompletionItem(name) for name in names] or [
        CompletionItem(incomplete, type="file")
    ]


_JSON_ASKED = "runner.json"  # ctx.meta key: the command was given --json


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        # Eager: noted before any other option is checked, so that a bad value
        # is reported as JSON too.
        is_eager=True,
        callback=_note_json,
        help='Print JSON (an error as {"error": {...}}, text on stderr as well).',
    )(f)


def _note_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON_ASKED] = True  # meta is shared with the group's context
    return value


def _json_asked(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_JSON_ASKED))


def _usage_error(exc: click.UsageError) -> dict[str, Any]:
    """A usage error click found (bad option or value), shaped like
    `RunnerError.as_dict()`."""
    return {
        "message": exc.format_message(),
        "exit_code": exc.exit_code,
        "type": type(exc).__name__,
    }


def send_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the sending flags; the command receives them as `send: runs.SendOptions`."""

    @functools.wraps(f)
    def command(
        *args: Any,
        concurrency: int | None,
        timeout: float | None,
        base_url: str | None,
        simulate: bool,
        max_requests: int | None,
        max_images: int | None,
        max_cost: float | None,
        no_review: bool,
        no_fail_fast: bool,
        **kwargs: Any,
    ) -> Any:
        caps = {
            "max_requests": max_requests,
            "max_images": max_images,
            "max_cost_usd": max_cost,
        }
        send = runs.SendOptions(
            concurrency=concurrency,
            timeout=timeout,
            base_url=base_url,
            simulator=_simulator if simulate else None,
            caps={k: v for k, v in caps.items() if v is not None},
            review=not no_review,
            fail_fast=not no_fail_fast,
        )
        return f(*args, send=send, **kwargs)

    options = [
        click.option(
            "--concurrency",
            "-c",
            type=click.IntRange(1, 1024),
            help="Requests in flight at once [default: the job file's, else 8].",
        ),
        click.option(
            "--base-url",
            envvar="RUNNER_BASE_URL",
            metavar="URL",
            help=(
                "API base URL (env RUNNER_BASE_URL) "
                f"[default: {runs.DEFAULT_BASE_URL}]. Its key: "
                f"{runs.GOOGLE_KEY_VARIABLE} for {runs.GOOGLE_HOST}, "
                f"{runs.RELAY_KEY_VARIABLE} for any other host (only that one "
                "variable is read)."
            ),
        ),
        click.option(
            "--simulate",
            is_flag=True,
            help="Use the built-in simulated API on loopback: no key, no network.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1, None),
            metavar="SECONDS",
            help="Wait at most this long for an answer [default: 300].",
        ),
        click.option(
            "--max-requests",
            type=click.IntRange(0, None),
            metavar="N",
            help="Budget: requests this job may send in all (overrides the job file).",
        ),
        click.option(
            "--max-images",
            type=click.IntRange(0, None),
            metavar="N",
            help="Budget: images this job may produce in all.",
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(0, None),
            metavar="USD",
            help="Budget: estimated USD this job may spend in all.",
        ),
        click.option(
            "--no-review",
            is_flag=True,
            help="Make no thumbnails, sheets or gallery during and after the run "
            "(see `runner review`).",
        ),
        click.option(
            "--no-fail-fast",
            is_flag=True,
            help="Keep sending when the run's first requests all fail the same way "
            "(by default the run then stops, exit 3).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def batch_option(f: F) -> F:
    return click.option(
        "--batch/--no-batch",
        "batch",
        default=None,
        help="Send through the Batch API at half price (results within 24 hours), "
        "or not [default: the job file's transport:].",
    )(f)


def detach_option(f: F) -> F:
    return click.option(
        "--detach",
        is_flag=True,
        help="With --batch: return once the batches exist; a later submit collects "
        "them.",
    )(f)


# -- commands -------------------------------------------------------------------------


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@send_options
@store_options
@json_option
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask before a costly run or a grid of over 10,000 items.",
)
@click.option(
    "--take-over",
    is_flag=True,
    help="Make this file the job's file when its name: belongs to a job made from "
    "another job file.",
)
@batch_option
@detach_option
def submit(
    job_file: Path,
    send: runs.SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
    yes: bool,
    take_over: bool,
    batch: bool | None,
    detach: bool,
) -> None:
    """Plan, store and run a job; submitting again resumes and skips finished items.

    Items done by --simulate are sent again by a submit without it. With --batch
    the items go through the Batch API at half price (results within 24 hours);
    Ctrl-C stops waiting, not the batches, and a later submit collects them.

    Example: runner submit jobs/demo.yaml --concurrency 16
    """
    send = dataclasses.replace(send, batch=batch, detach=detach)
    report = runs.submit(
        job_file,
        workspace=runs.Workspace(output, db_url),
        send=send,
        yes=yes,
        take_over=take_over,
        confirm=_ask if _interactive() else None,
        progress=functools.partial(render.progress, as_json),
        warn=render.warning,
        announce=None if as_json else render.sending,
    )
    _finish(report, as_json, _retry_command(report, output, db_url, send))


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option("--blocked", is_flag=True, help="Also send blocked items again.")
@send_options
@store_options
@json_option
@batch_option
@detach_option
def retry(
    job: str,
    blocked: bool,
    send: runs.SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
    batch: bool | None,
    detach: bool,
) -> None:
    """Send a job's failed items again (and blocked ones with --blocked).

    JOB is a job name or a job file. Finished items are never sent again. With
    --batch (the default for a job submitted with `transport: batch`) they go
    through the Batch API at half price.

    Example: runner retry routing-banners --blocked
    """
    send = dataclasses.replace(send, batch=batch, detach=detach)
    report = runs.retry(
        job,
        workspace=runs.Workspace(output, db_url),
        send=send,
        include_blocked=blocked,
        progress=functools.partial(render.progress, as_json),
        announce=None if as_json else render.sending,
        warn=render.warning,
    )
    _finish(report, as_json, _retry_command(report, output, db_url, send))


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@batch_option
@store_options
@json_option
def plan(
    job_file: Path, batch: bool | None, output: Path, db_url: str | None, as_json: bool
) -> None:
    """Validate a job file and show its grid; sends nothing.

    Shows items per axis, how many are new or already done, and the estimated
    tokens and cost of what would be sent (prices: runner/models.py, or the
    job file's `pricing:`); with --batch, also through the Batch API.

    Example: runner plan jobs/demo.yaml --json
    """
    preview = runs.preview(
        job_file, workspace=runs.Workspace(output, db_url), batch=batch
    )
    render.plan(preview, as_json)


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option(
    "--by",
    "by",
    type=click.Choice(["prompt", "aspect_ratio", "image_size", "references"]),
    multiple=True,
    help="Also show counts, tokens and spend per value of this axis (repeatable; "
    "in --json too).",
)
@store_options
@json_option
def status(
    job: str, by: tuple[str, ...], output: Path, db_url: str | None, as_json: bool
) -> None:
    """Counts by status, usage, spend and failures grouped by reason.

    JOB is a job name or a job file.

    Example: runner status routing-banners --json
    """
    report = runs.status(job, workspace=runs.Workspace(output, db_url), by=by)
    render.status(report, by, as_json)


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option(
    "--base-url",
    envvar="RUNNER_BASE_URL",
    metavar="URL",
    help=f"API base URL (env RUNNER_BASE_URL) [default: {runs.DEFAULT_BASE_URL}].",
)
@store_options
@json_option
def cancel(
    job: str, base_url: str | None, output: Path, db_url: str | None, as_json: bool
) -> None:
    """Cancel a job's live Batch API batches.

    What they finished is collected; the rest of their items go back to pending,
    and a submit sends them again. Exit 0 once the batches are cancelled. JOB is
    a job name or a job file.

    Example: runner cancel routing-banners
    """
    report = runs.cancel(
        job,
        workspace=runs.Workspace(output, db_url),
        send=runs.SendOptions(base_url=base_url, review=False),
        progress=functools.partial(render.progress, as_json),
    )
    _finish(report, as_json, None, cancelled=True)


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option("--open", "open_", is_flag=True, help="Open the gallery in a browser.")
@click.option(
    "--serve",
    is_flag=True,
    help="Serve the gallery on 127.0.0.1 with controls to star, reject, note and "
    "compare images, each change written to the store at once; Ctrl-C stops it.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="With --serve: the port [default: 0, any free one].",
)
@store_options
@json_option
def review(
    job: str,
    open_: bool,
    serve: bool,
    port: int | None,
    output: Path,
    db_url: str | None,
    as_json: bool,
) -> None:
    """(Re)build a job's gallery (index.html), thumbnails and contact sheets.

    Submit and retry do this at the end of every run; this command is for
    rebuilding by hand. With --serve the gallery is served on 127.0.0.1 to mark
    images in (keys: j/k next/previous, s star, x reject, n note, c compare, ?
    help) until Ctrl-C (exit 0). JOB is a job name or a job file.

    Example: runner review routing-banners --serve --open
    """
    workspace = runs.Workspace(output, db_url)
    if serve:

        def ready(serving: Serving) -> None:
            render.serving(serving, as_json)
            if open_ and not _open_in_browser(serving.url):
                render.browser_missing(serving.url)

        render.served(runs.serve(job, workspace=workspace, port=port or 0, ready=ready))
        return
    if port is not None:
        raise UsageError("--port only applies with --serve; add --serve, or drop it")
    report = runs.review(job, workspace=workspace)
    render.review(report, as_json)
    if open_ and not _open_in_browser(report.index.resolve().as_uri()):
        render.browser_missing(report.index)


@cli.command(name="list")
@store_options
@json_option
def list_jobs(output: Path, db_url: str | None, as_json: bool) -> None:
    """Jobs in the store with their item counts.

    Example: runner list --output ./output
    """
    render.job_list(runs.list_jobs(workspace=runs.Workspace(output, db_url)), as_json)


def removal_options(f: F) -> F:
    f = click.option(
        "--yes", "-y", is_flag=True, help="Do not ask (needed off a terminal)."
    )(f)
    f = click.option("--images", is_flag=True, help="Delete their image files too.")(f)
    return f


@cli.command(name="rm")
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@removal_options
@store_options
@json_option
def rm(
    job: str, images: bool, yes: bool, output: Path, db_url: str | None, as_json: bool
) -> None:
    """Remove a job from the store: its items, attempts, runs and totals.

    Its folder is left alone unless --images (then its images, thumbnails,
    contact sheets, gallery and manifest go too). Asks first on a terminal.
    JOB is a job name or a job file.

    Example: runner rm routing-banners --images
    """
    _remove(runs.remove, job, images, yes, runs.Workspace(output, db_url), as_json)


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@removal_options
@store_options
@json_option
def prune(
    job: str, images: bool, yes: bool, output: Path, db_url: str | None, as_json: bool
) -> None:
    """Remove a job's stale items: those its job file no longer has.

    Their cost stays in the job's totals and budget. With --images their image
    files go too. Asks first on a terminal. JOB is a job name or a job file.

    Example: runner prune routing-banners --images
    """
    _remove(runs.prune, job, images, yes, runs.Workspace(output, db_url), as_json)


def _remove(
    entry: Callable[..., Removal],
    job: str,
    images: bool,
    yes: bool,
    workspace: runs.Workspace,
    as_json: bool,
) -> None:
    """`rm` and `prune`: ask on a terminal, never wait off one."""
    report = entry(
        job,
        workspace=workspace,
        images=images,
        yes=yes,
        confirm=_ask_removal if _interactive() else None,
    )
    render.removal(report, as_json)


# -- curation: marks and export (SPEC 6) ---------------------------------------------


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("--star", is_flag=True, help="Star the images.")
@click.option("--reject", is_flag=True, help="Reject the images.")
@click.option(
    "--clear", is_flag=True, help="Remove their mark, and their note unless --note."
)
@click.option(
    "--note",
    metavar="TEXT",
    help="Set their note (alone: the mark stays; an empty TEXT removes the note).",
)
@store_options
@json_option
def mark(
    job: str,
    images: tuple[str, ...],
    star: bool,
    reject: bool,
    clear: bool,
    note: str | None,
    output: Path,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Star, reject or clear images of a job, or note them; the manifest follows.

    IMAGE is an image's file name (as in the manifest and gallery; a path to it
    or the name without its extension work too) or the start of an item's key,
    which names all of that item's images. Nothing is changed unless every IMAGE
    names something. JOB is a job name or a job file.

    Example: runner mark routing-banners hero_16x9_noref_s1_3f2a9c1b.png --star
    """
    chosen = [name for name, on in (("star", star), ("reject", reject)) if on]
    if clear:
        chosen.append("clear")
    if len(chosen) > 1:
        raise UsageError(
            f"--{' and --'.join(chosen)} contradict each other; give one of them"
        )
    report = runs.mark(
        job,
        images,
        workspace=runs.Workspace(output, db_url),
        change=chosen[0] if chosen else None,
        note=note,
    )
    render.marking(report, as_json)


@cli.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.argument("dest", metavar="DEST", type=click.Path(path_type=Path))
@click.option(
    "--marked",
    type=click.Choice(runs.MARK_FILTERS),
    help="Only images marked so (any: starred or rejected; none: neither) "
    "[default: every image].",
)
@store_options
@json_option
def export(
    job: str,
    dest: Path,
    marked: str | None,
    output: Path,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Copy a job's images into DEST, each with a JSON sidecar (<image>.json).

    The sidecar holds the job, item key, prompt, settings, usage, mark, note and
    lineage. Images are copied, never moved; a file already in DEST is never
    overwritten (an identical one is left as it is). Exit 1 if an image file is
    missing. JOB is a job name or a job file.

    Example: runner export routing-banners ./picked --marked star
    """
    report = runs.export(
        job, dest, workspace=runs.Workspace(output, db_url), marked=marked
    )
    render.export(report, as_json)
    if report.exit_code:
        sys.exit(report.exit_code)


# -- the edge: questions, the simulator, exit codes -------------------------------


def _finish(
    report: RunReport, as_json: bool, retry: str | None, *, cancelled: bool = False
) -> None:
    """Render a run, then exit with its code (`cancelled`: runner cancel, whose
    items going back to pending is what was asked)."""
    render.run(report, as_json, retry)
    if (stop := report.stop) is not None:
        if as_json:  # the JSON just printed carries it as "error"
            render.error(stop, as_json=False)
            sys.exit(stop.exit_code)
        raise stop
    render.run_notes(report, None if as_json else retry)
    code = report.exit_code
    sys.exit(0 if cancelled and code == 1 else code)


def _retry_command(
    report: RunReport, output: Path, db_url: str | None, send: runs.SendOptions
) -> str | None:
    """The command that sends the failed and blocked items left again, with the
    options this one used where they differ from the defaults; None when none are
    left, or the run ended early (its own note says what to do then)."""
    counts, result = report.status.counts, report.result
    if result.interrupted or result.stopped or result.budget_stop:
        return None
    if not (counts["failed"] or counts["blocked"]):
        return None
    words = ["runner", "retry", report.job]  # the job's name, whatever JOB was
    if output != Path(DEFAULT_OUTPUT):
        words += ["--output", str(output)]
    if db_url:
        words += ["--db", _without_password(db_url)]
    if send.simulated:
        words.append("--simulate")
    elif send.base_url and send.base_url != runs.DEFAULT_BASE_URL:
        words += ["--base-url", send.base_url]
    if counts["blocked"]:
        words.append("--blocked")
    if send.batch is not None:  # as this command was told; else the job's own
        words.append("--batch" if send.batch else "--no-batch")
    return shlex.join(words)


def _without_password(url: str) -> str:
    """A URL to show: its password, if it has one, as ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _interactive() -> bool:
    """Someone at a terminal who can answer a question."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask(confirmation: Confirmation) -> bool:
    return click.confirm(render.question(confirmation), err=True)


def _ask_removal(question: RemovalQuestion) -> bool:
    return click.confirm(f"{question.summary}?", err=True)


SIMULATE_FAULTS_VARIABLE = "RUNNER_SIMULATE_FAULTS"  # --simulate's fault rules


def _open_in_browser(url: str) -> bool:
    """Show a page in the user's browser; False when none could be opened (no
    display, no browser installed, $BROWSER failing). Not `click.launch`: on
    Linux it starts xdg-open without waiting and reports success either way."""
    import webbrowser

    return webbrowser.open(url)


@contextmanager
def _simulator() -> Iterator[str]:
    """The simulated API on loopback (--simulate), for the length of a run, with
    the fault rules RUNNER_SIMULATE_FAULTS holds (JSON: a rule or a list)."""
    from runner.simulate import SimServer, parse_rules

    raw = os.environ.get(SIMULATE_FAULTS_VARIABLE, "").strip()
    try:
        faults = parse_rules(raw.encode()) if raw else []
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"{SIMULATE_FAULTS_VARIABLE} is not a fault rule ({exc}); give JSON "
            """such as '{"kind": "503", "match": "nebula"}', or unset it"""
        ) from None
    with SimServer(latency=0.15, latency_jitter=0.1) as sim:
        for fault in faults:
            sim.add_fault(fault)
        yield sim.url


# -- starting out: init, schema, completion of job names ----------------------------


@cli.command()
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@json_option
def init(folder: Path, as_json: bool) -> None:
    """Write a commented starter job file, its schema and refs/.

    DIR (default: the current folder) gets job.yaml, which `runner plan` accepts
    as written, job.schema.json, which the job file's first line points editors
    at, and refs/ for reference images. Never overwrites a file (exit 2).

    Example: runner init acme-launch
    """
    render.starter(runs.init(folder), as_json)


@cli.command()
def schema() -> None:
    """Print the job-file JSON Schema (draft 2020-12), for editors.

    A job file whose first line is `# yaml-language-server: $schema=PATH` gets
    key completion and checks in editors (VS Code's YAML extension). `runner
    plan` checks what the schema cannot (placeholders, files, the model's limits).

    Example: runner schema > job.schema.json
    """
    click.echo(runs.schema_text(), nl=False)
