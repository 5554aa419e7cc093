"""The `runner` command line: a thin layer over `runner.jobs`.

Owns: arguments and environment defaults, the API endpoint and key choice, the live
progress display (rich on a terminal, plain lines otherwise), tables and `--json`
rendering, and turning a `RunnerError` into one readable line and its exit code.
The only module that prints or exits.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import click
from rich.console import Console
from rich.table import Table

from runner import __version__, pricing
from runner.errors import RunnerError, RunStopped, UsageError
from runner.runs import execution as jobs

if TYPE_CHECKING:
    from runner.client import Endpoint
    from runner.scheduler import Progress
    from runner.store import Store

DEFAULT_BASE_URL = "https://api.tokaify.com"
GOOGLE_HOST = "generativelanguage.googleapis.com"
PLAIN_PROGRESS_EVERY = 2.0  # seconds between progress lines when not on a terminal
MAX_ITEMS_UNCONFIRMED = 10_000  # a bigger grid is more likely a typo than a plan
REVIEW_AUTO_MAX = 5_000  # past this, building the gallery takes minutes: on request
CONFIRM_USD = 5.0  # ask on a terminal past this estimate (env RUNNER_CONFIRM_USD)

F = TypeVar("F", bound=Callable[..., Any])


class _RunnerGroup(click.Group):
    """Catch `RunnerError` at the edge: one readable line, the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunnerError as exc:
            if os.environ.get("RUNNER_DEBUG"):
                raise
            _err(f"error: {exc.message}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _err("interrupted: unfinished items stay pending; submit again to resume")
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
        type=click.Path(file_okay=False, path_type=Path),
        help="Results root; each job writes to <output>/<job>/ (env RUNNER_OUTPUT).",
    )(f)
    return f


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The flags of every command that sends requests."""

    concurrency: int | None
    timeout: float | None
    base_url: str | None
    simulate: bool
    caps: dict[str, Any]  # budget caps given on the command line
    review: bool  # rebuild the gallery after the run

    def overrides(self) -> dict[str, Any]:
        return {} if self.timeout is None else {"request_timeout": self.timeout}


def send_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the sending flags; the command receives them as `send: SendOptions`."""

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
        **kwargs: Any,
    ) -> Any:
        caps = {
            "max_requests": max_requests,
            "max_images": max_images,
            "max_cost_usd": max_cost,
        }
        send = SendOptions(
            concurrency,
            timeout,
            base_url,
            simulate,
            {k: v for k, v in caps.items() if v is not None},
            not no_review,
        )
        return f(*args, send=send, **kwargs)

    options = [
        click.option(
            "--concurrency",
            "-c",
            type=click.IntRange(1, 256),
            help="Requests in flight at once [default: the job file's, else 8].",
        ),
        click.option(
            "--base-url",
            envvar="RUNNER_BASE_URL",
            metavar="URL",
            help=f"API base URL (env RUNNER_BASE_URL) [default: {DEFAULT_BASE_URL}].",
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
def submit(
    job_file: Path,
    send: SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
    yes: bool,
) -> None:
    """Plan, store and run a job; submitting again resumes and skips finished items.

    Example: runner submit jobs/demo.yaml --concurrency 16
    """
    import anyio

    from runner.spec import load_job

    spec = load_job(job_file)
    _show_warnings(spec.warnings)
    workspace = jobs.Workspace(output, db_url)
    with _endpoint(send.base_url, send.simulate) as endpoint:
        store = workspace.open_store()
        try:
            check = jobs.check_submit(spec, store)
            _confirm(spec.name, check, yes)
            with _progress_display(as_json) as on_progress:
                report = anyio.run(
                    lambda: jobs.submit(
                        spec,
                        workspace=workspace,
                        store=store,
                        endpoint=endpoint,
                        concurrency=send.concurrency,
                        on_progress=on_progress,
                        overrides=send.overrides(),
                        budget_caps=send.caps,
                        check=check,
                    )
                )
            if send.review:
                _review_after_run(store, report, workspace, as_json)
        finally:
            store.close()
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
    send: SendOptions,
    output: Path,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Send a job's failed items again (and blocked ones with --blocked).

    JOB is a job name or a job file. Finished items are never sent again.

    Example: runner retry routing-banners --blocked
    """
    import anyio

    workspace = jobs.Workspace(output, db_url)
    store = workspace.open_store()
    try:
        row = jobs.find_job(store, job)
        with _endpoint(send.base_url, send.simulate) as endpoint:
            with _progress_display(as_json) as on_progress:
                report = anyio.run(
                    lambda: jobs.retry(
                        row,
                        workspace=workspace,
                        store=store,
                        endpoint=endpoint,
                        include_blocked=blocked,
                        concurrency=send.concurrency,
                        on_progress=on_progress,
                        overrides=send.overrides(),
                        budget_caps=send.caps,
                    )
                )
        if send.review:
            _review_after_run(store, report, workspace, as_json)
    finally:
        store.close()
    _finish(report, as_json)


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@store_options
@json_option
def plan(job_file: Path, output: Path, db_url: str | None, as_json: bool) -> None:
    """Validate a job file and show its grid; sends nothing.

    Shows items per axis, how many are new or already done, and the estimated
    tokens and cost of what would be sent (prices: runner/pricing.py, or the
    job file's `pricing:`).

    Example: runner plan jobs/demo.yaml --json
    """
    from runner.spec import load_job

    spec = load_job(job_file)
    store = jobs.Workspace(output, db_url).open_store()
    try:
        preview = jobs.preview(spec, store)
    finally:
        store.close()
    data = preview.as_dict()
    if as_json:
        _print_json(data)
        return
    _show_warnings(spec.warnings)
    console = Console()
    console.print(
        f"[bold]{data['job']}[/] ({data['file']}): {data['items']} items, "
        f"{data['new']} new, {data['to_send']} to send"
    )
    for axis, counts in data["axes"].items():
        shown = ", ".join(f"{value} ({n})" for value, n in counts.items())
        console.print(f"  {axis:<13} {len(counts)} value(s): {shown}", highlight=False)
    if data["stored"]:
        stored = ", ".join(f"{n} {s}" for s, n in sorted(data["stored"].items()))
        console.print(f"  already in the store: {stored}")
    if data["duplicates_dropped"]:
        console.print(
            f"  {data['duplicates_dropped']} cell(s) dropped: same request as another"
        )
    for label, key in (("to send", "to_send"), ("whole plan", "whole_plan")):
        est = data["estimate"][key]
        cost = (
            "no price known" if est["cost_usd"] is None else f"${est['cost_usd']:,.2f}"
        )
        console.print(
            f"  estimate, {label}: {est['requests']:,} requests, "
            f"{est['tokens']['totalTokenCount']:,} tokens, {cost}",
            highlight=False,
        )
    caps = {k: v for k, v in data["budget"].items() if v is not None}
    if caps:
        shown = ", ".join(f"{k} {v}" for k, v in caps.items())
        console.print(f"  budget: {shown}", highlight=False)


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
    workspace = jobs.Workspace(output, db_url)
    # Without --by, read the SQLite file directly: no SQLAlchemy import to wait for.
    report = None if by else jobs.quick_status(workspace, job)
    if report is None:
        store = workspace.open_store()
        try:
            report = jobs.status(store, jobs.find_job(store, job), by)
        finally:
            store.close()
    if as_json:
        _print_json(report.as_dict())
        return
    _render_status(Console(), report.as_dict(), by)


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
    from runner.review import build_review

    workspace = jobs.Workspace(output, db_url)
    store = workspace.open_store()
    try:
        row = jobs.find_job(store, job)
        built = build_review(store, row, workspace.job_folder(row.name))
    finally:
        store.close()
    if as_json:
        _print_json(
            {
                "job": row.name,
                "index": str(built.index),
                "contact_sheets": [str(p) for p in built.contact_sheets],
                "thumbnails": built.thumbnails,
                "seconds": dict(built.seconds),
            }
        )
    else:
        click.echo(f"gallery: {built.index}")
        sheets = built.index.parent / "contact"
        click.echo(f"contact sheets: {len(built.contact_sheets)} in {sheets}")
    if open_:
        click.launch(str(built.index))


@cli.command(name="list")
@store_options
@json_option
def list_jobs(output: Path, db_url: str | None, as_json: bool) -> None:
    """Jobs in the store with their item counts.

    Example: runner list --output ./output
    """
    store = jobs.Workspace(output, db_url).open_store()
    try:
        summaries = store.list_jobs()
    finally:
        store.close()
    if as_json:
        _print_json(
            [
                {
                    "job": s.name,
                    "file": s.job_path,
                    "counts": s.counts,
                    "updated_at": s.updated_at,
                }
                for s in summaries
            ]
        )
        return
    if not summaries:
        click.echo(f"no jobs in {output}")
        return
    table = Table(
        "job", "items", "succeeded", "failed", "blocked", "pending", "updated"
    )
    for s in summaries:
        c = s.counts
        table.add_row(
            s.name,
            str(sum(c.values())),
            str(c["succeeded"]),
            str(c["failed"]),
            str(c["blocked"]),
            str(c["pending"] + c["running"]),
            s.updated_at[:19].replace("T", " "),
        )
    Console().print(table)


# -- rendering ------------------------------------------------------------------------


def _finish(report: jobs.RunReport, as_json: bool) -> None:
    data = report.status.as_dict()
    if as_json:
        data.update(
            exit_code=report.exit_code,
            stopped=report.result.stopped,
            interrupted=report.result.interrupted,
            manifest=str(report.manifest),
            new_items=report.sync.new if report.sync else 0,
            recovered=report.recovered,
        )
        _print_json(data)
    else:
        console = Console()
        p = report.result.progress
        console.print(
            f"[bold]{report.job}[/]: sent {p.requests} request(s) for {p.total} "
            f"item(s) in {p.elapsed:.1f}s; manifest {report.manifest}",
            highlight=False,
        )
        if report.recovered:
            console.print(f"resumed {report.recovered} item(s) a stopped run left open")
        _render_status(console, data)
    if report.result.stopped:
        raise RunStopped(report.result.stopped, status=report.result.stopped_status)
    if report.result.budget_stop:
        _err(
            f"stopped: {report.result.budget_stop}; nothing past it was sent. Raise "
            "`budget:` in the job file or pass --max-requests/--max-images/"
            "--max-cost, then submit again to continue"
        )
    if report.result.interrupted:
        _err("interrupted: unfinished items stay pending; submit again to resume")
    sys.exit(report.exit_code)


def _render_status(
    console: Console, data: dict[str, Any], by: tuple[str, ...] = ()
) -> None:
    counts = data["counts"]
    table = Table(title=f"job {data['job']}", title_justify="left")
    shown = ("succeeded", "failed", "blocked", "pending", "running")
    for name in ("items", *shown):
        table.add_column(name, justify="right")
    table.add_row(str(data["total"]), *(str(counts[name]) for name in shown))
    console.print(table)
    usage = data["usage"]
    req = data["requests"]
    console.print(
        f"tokens: prompt {usage['promptTokenCount']:,}, output "
        f"{usage['candidatesTokenCount']:,}, thinking {usage['thoughtsTokenCount']:,}"
        f", total {usage['totalTokenCount']:,}",
        highlight=False,
    )
    per_success = data["attempts_per_success"]
    console.print(
        f"requests: {req['sent']:,} sent, {req['unknown']} with an unknown outcome "
        f"(possibly billed), {req['paid_failed']} billed without an image"
        + (f"; {per_success} per success" if per_success else ""),
        highlight=False,
    )
    if data["cost"]:
        cost = data["cost"]
        console.print(
            f"spend: ${cost['total_usd']:,.4f} (${cost['billed_usd']:,.4f} from "
            f"usage + ${cost['possibly_billed_usd']:,.4f} estimated for unknown "
            f"outcomes; prices as of {data['price']['as_of']})",
            highlight=False,
        )
    for axis in by:
        groups = Table(
            axis, "items", "ok", "failed", "blocked", "pending", "requests",
            "tokens", "USD", title=f"by {axis}", title_justify="left",
        )  # fmt: skip
        for value, g in data["by"][axis].items():
            usd = "-" if g["cost"] is None else f"{g['cost']['total_usd']:.4f}"
            groups.add_row(
                value, str(g["items"]), str(g["succeeded"]), str(g["failed"]),
                str(g["blocked"]), str(g["pending"] + g["running"]),
                str(g["requests"]), f"{g['usage']['totalTokenCount']:,}", usd,
            )  # fmt: skip
        console.print(groups)
    if data["failures"]:
        failures = Table("status", "count", "reason", title="failures by reason")
        for f in data["failures"]:
            failures.add_row(f["status"], str(f["count"]), f["reason"])
        console.print(failures)


@contextmanager
def _progress_display(quiet: bool) -> Iterator[Callable[[Progress], None] | None]:
    """A live progress bar on a terminal, periodic plain lines otherwise (stderr)."""
    err = Console(stderr=True)
    if quiet:
        yield None
        return
    if err.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        bar = Bar(
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("items", total=None, detail="")
        with bar:

            def update(p: Progress) -> None:
                bar.update(task, total=p.total, completed=p.finished, detail=_detail(p))

            yield update
        return

    last = [0.0]

    def plain(p: Progress) -> None:
        now = time.monotonic()
        if p.finished == p.total or p.stopping or now - last[0] >= PLAIN_PROGRESS_EVERY:
            last[0] = now
            err.print(
                f"[{p.finished}/{p.total}] {_detail(p)}{_eta(p)}", highlight=False
            )

    yield plain


def _detail(p: Progress) -> str:
    parts = [
        f"ok {p.succeeded}",
        f"failed {p.failed}",
        f"blocked {p.blocked}",
        f"running {p.running}",
        f"{p.tokens:,} tok",
    ]
    if p.retries:
        parts.append(f"{p.retries} retries")
    if p.limit and p.limit < p.concurrency:
        parts.append(f"slowed to {p.limit}")
    if p.stopping:
        parts.append(p.stopping)
    return " · ".join(parts)


def _eta(p: Progress) -> str:
    if not p.finished or p.finished >= p.total:
        return ""
    remaining = p.elapsed / p.finished * (p.total - p.finished)
    return f" | eta {int(remaining // 60)}:{int(remaining % 60):02d}"


@contextmanager
def _endpoint(base_url: str | None, simulate: bool) -> Iterator[Endpoint]:
    """The API to call: the simulated one, or a real one with its key from env."""
    from runner.client import Endpoint

    if simulate:
        from runner.simulate import SimServer

        with SimServer(latency=0.15, latency_jitter=0.1) as sim:
            yield Endpoint(base_url=sim.url)
        return
    base = base_url or DEFAULT_BASE_URL
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"base URL {base!r} is not an http(s) URL; e.g. {DEFAULT_BASE_URL}"
        )
    if parsed.hostname == GOOGLE_HOST:
        key, auth, var = os.environ.get("GEMINI_API_KEY"), "goog", "GEMINI_API_KEY"
    else:
        key, auth, var = os.environ.get("TOKAIFY_API_KEY"), "bearer", "TOKAIFY_API_KEY"
    if not key:
        raise UsageError(
            f"no API key: set {var} for {parsed.hostname}, or try the pipeline with "
            "--simulate (no key, no network)"
        )
    yield Endpoint(base_url=base, api_key=key, auth=auth)


def _review_after_run(
    store: Store, report: jobs.RunReport, workspace: jobs.Workspace, quiet: bool
) -> None:
    """Rebuild the gallery after a run; a failure here never hides the run's result."""
    from runner.review import build_review

    job = store.get_job(report.job)
    if job is None:
        return
    items = sum(report.status.counts.values())
    if items > REVIEW_AUTO_MAX:
        _err(
            f"gallery not rebuilt: {items:,} items is more than {REVIEW_AUTO_MAX:,}; "
            f"run `runner review {job.name}` when you want it"
        )
        return
    try:
        built = build_review(store, job, workspace.job_folder(job.name))
    except (OSError, RunnerError) as exc:
        _err(f"warning: the gallery could not be rebuilt ({exc}); try `runner review`")
        return
    if not quiet:
        _err(f"gallery: {built.index}")


def _interactive() -> bool:
    """Someone at a terminal who can answer a question."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def _confirm(name: str, check: jobs.SubmitCheck, yes: bool) -> None:
    """Ask before a very large grid or a costly run; never wait off a terminal."""
    if yes:
        return
    to_send, usd = check.to_send, check.cost_usd
    interactive = _interactive()
    if to_send > MAX_ITEMS_UNCONFIRMED:
        question = (
            f"{name} would send {to_send:,} requests (more than "
            f"{MAX_ITEMS_UNCONFIRMED:,}); check the grid with `runner plan`"
        )
        if not interactive:
            raise UsageError(f"{question}, then pass --yes to send them")
        if not click.confirm(f"{question}. Send them?", err=True):
            raise UsageError("not confirmed; nothing was sent")
        return
    threshold = float(os.environ.get("RUNNER_CONFIRM_USD", CONFIRM_USD))
    if interactive and usd is not None and usd > threshold:
        question = (
            f"{name}: {to_send:,} new requests, estimated "
            f"${usd:,.2f} (prices as of {pricing.PRICES_AS_OF}). Send them?"
        )
        if not click.confirm(question, err=True):
            raise UsageError("not confirmed; nothing was sent")


def _show_warnings(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        _err(f"warning: {warning}")


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _err(message: str) -> None:
    click.echo(message, err=True)
