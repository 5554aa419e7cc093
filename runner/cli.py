"""The `runner` command line: click commands over the runs layer.

Owns: arguments and environment defaults (shared option decorators; RUNNER_DEBUG
checked here, the other RUNNER_* variables where they are used), the act of
asking a question at a terminal, starting the simulated API for --simulate, and
turning a `RunnerError` into readable lines (one per problem) and its exit code.
Each command parses, calls one entry point of `runner.runs`, and renders its report
with `runner.render`. The only module that exits; holds no business logic.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from runner import __version__, render, runs
from runner.errors import RunnerError, RunStopped, UsageError

if TYPE_CHECKING:
    from runner.reports import Confirmation, Removal, RemovalQuestion, RunReport

F = TypeVar("F", bound=Callable[..., Any])


class _RunnerGroup(click.Group):
    """Catch `RunnerError` at the edge: one readable line, the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunnerError as exc:
            if _debug():
                raise
            for line in exc.message.splitlines():
                render.err(f"error: {line}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            render.err(render.INTERRUPTED)
            ctx.exit(130)


@click.group(cls=_RunnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Batch image exploration with Nano Banana (Gemini image) models.

    Write a job file that declares a grid (prompts x vars x aspect ratios x image
    sizes x reference sets x samples), then submit it. Every item, attempt and
    token is recorded in a SQLite store, so a run that stopped resumes where it
    was and never pays twice for a finished image.

    Example: runner submit jobs/demo.yaml --simulate
    """
    written = os.environ.get(DEBUG_VARIABLE, "")
    if written.strip().lower() not in (*_ON, *_OFF):
        raise UsageError(
            f"{DEBUG_VARIABLE}={written[:40]!r} is not a yes/no value; set it to 1 "
            "to show tracebacks, 0 or nothing for one-line errors"
        )


DEBUG_VARIABLE = "RUNNER_DEBUG"  # set: errors keep their traceback
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
        help="SQLAlchemy URL of the store [default: sqlite:///<output>/runner.db].",
    )(f)
    f = click.option(
        "--output",
        "output",
        envvar="RUNNER_OUTPUT",
        default="output",
        show_default=True,
        # Not file_okay=False: Workspace.check_output names the folder, the
        # variable it may come from, and the fix, like every other folder problem.
        type=click.Path(path_type=Path),
        help="Results root; each job writes to <output>/<job>/ (env RUNNER_OUTPUT).",
    )(f)
    return f


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


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
                f"[default: {runs.DEFAULT_BASE_URL}]."
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
            help="Do not rebuild the gallery after the run (see `runner review`).",
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
def submit(
    job_file: Path,
    send: runs.SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
    yes: bool,
    take_over: bool,
) -> None:
    """Plan, store and run a job; submitting again resumes and skips finished items.

    Items done by --simulate are sent again by a submit without it.

    Example: runner submit jobs/demo.yaml --concurrency 16
    """
    report = runs.submit(
        job_file,
        workspace=runs.Workspace(output, db_url),
        send=send,
        yes=yes,
        take_over=take_over,
        confirm=_ask if _interactive() else None,
        progress=functools.partial(render.progress, as_json),
        warn=render.warning,
    )
    _finish(report, as_json)


@cli.command()
@click.argument("job", metavar="JOB")
@click.option("--blocked", is_flag=True, help="Also send blocked items again.")
@send_options
@store_options
@json_option
def retry(
    job: str,
    blocked: bool,
    send: runs.SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Send a job's failed items again (and blocked ones with --blocked).

    JOB is a job name or a job file. Finished items are never sent again.

    Example: runner retry routing-banners --blocked
    """
    report = runs.retry(
        job,
        workspace=runs.Workspace(output, db_url),
        send=send,
        include_blocked=blocked,
        progress=functools.partial(render.progress, as_json),
        warn=render.warning,
    )
    _finish(report, as_json)


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@store_options
@json_option
def plan(job_file: Path, output: Path, db_url: str | None, as_json: bool) -> None:
    """Validate a job file and show its grid; sends nothing.

    Shows items per axis, how many are new or already done, and the estimated
    tokens and cost of what would be sent (prices: runner/models.py, or the
    job file's `pricing:`).

    Example: runner plan jobs/demo.yaml --json
    """
    preview = runs.preview(job_file, workspace=runs.Workspace(output, db_url))
    render.plan(preview, as_json)


@cli.command()
@click.argument("job", metavar="JOB")
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
@click.argument("job", metavar="JOB")
@click.option("--open", "open_", is_flag=True, help="Open the gallery in a browser.")
@store_options
@json_option
def review(
    job: str, open_: bool, output: Path, db_url: str | None, as_json: bool
) -> None:
    """(Re)build a job's gallery (index.html), thumbnails and contact sheets.

    Submit and retry do this at the end of every run; this command is for
    rebuilding by hand. JOB is a job name or a job file.

    Example: runner review routing-banners --open
    """
    report = runs.review(job, workspace=runs.Workspace(output, db_url))
    render.review(report, as_json)
    if open_:
        click.launch(str(report.index))


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
@click.argument("job", metavar="JOB")
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
@click.argument("job", metavar="JOB")
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


# -- the edge: questions, the simulator, exit codes -------------------------------


def _finish(report: RunReport, as_json: bool) -> None:
    render.run(report, as_json)
    if report.result.stopped:
        raise RunStopped(report.result.stopped, status=report.result.stopped_status)
    render.run_notes(report)
    sys.exit(report.exit_code)


def _interactive() -> bool:
    """Someone at a terminal who can answer a question."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask(confirmation: Confirmation) -> bool:
    return click.confirm(render.question(confirmation), err=True)


def _ask_removal(question: RemovalQuestion) -> bool:
    return click.confirm(f"{question.summary}?", err=True)


@contextmanager
def _simulator() -> Iterator[str]:
    """The simulated API on loopback (--simulate), for the length of a run."""
    from runner.simulate import SimServer

    with SimServer(latency=0.15, latency_jitter=0.1) as sim:
        yield sim.url
