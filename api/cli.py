"""The ``bia`` command line: serving, deposits, harvests and maintenance of a catalog."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

import click

from catalog.config import Settings
from catalog.errors import CatalogError

if TYPE_CHECKING:
    from api.services import Services
    from catalog.registry import Registry
    from loaders.image_headers.job import HarvestedQueued


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


class _CatalogGroup(click.Group):
    """A command group that turns catalog errors into a readable message and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            click.echo(_format_error(exc), err=True)
            ctx.exit(2)


@click.group(cls=_CatalogGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BIA_DATA",
    help="Folder of the embedded stores and indexes [env BIA_DATA; default ./bia-data].",
)
@click.option("--base-url", envvar="BIA_BASE_URL", help="Base of minted IRIs [env BIA_BASE_URL].")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, base_url: str | None) -> None:
    """Run and maintain a bioimage archive catalog (REMBI metadata as RDF, deposits, file tables)."""
    ctx.ensure_object(dict)
    ctx.obj["settings"] = Settings.from_env(data_dir=data_dir, base_url=base_url)


# ----------------------------------------------------------------------------- schema


@cli.group()
def schema() -> None:
    """Generate and check the artefacts made from schema/rembi.yaml."""


@schema.command("build")
def schema_build_cmd() -> None:
    """Regenerate the SHACL shapes, JSON-LD context, JSON Schema and RDF mapping."""
    from catalog import schema_build

    changed = schema_build.write(schema_build.generate())
    for path in changed:
        click.echo(f"wrote {path}")
    click.echo(f"{len(changed)} file(s) changed")


@schema.command("check")
def schema_check_cmd() -> None:
    """Fail if a generated file differs from what the schema produces now."""
    from catalog import schema_build

    stale = schema_build.drift(schema_build.generate())
    for path in stale:
        click.echo(f"out of date: {path} (run `bia schema build`)", err=True)
    if stale:
        sys.exit(1)
    click.echo("generated files are up to date")


@schema.command("lint")
def schema_lint_cmd() -> None:
    """Run linkml-lint on the schema with the project's rules."""
    from linkml.linter.cli import main as lint_main

    from catalog import resources

    folder = resources.data_folder("schema")
    lint_main.main([str(folder / "rembi.yaml"), "--config", str(folder / "linkml-lint.yaml")], standalone_mode=True)


# ----------------------------------------------------------------------------- validate


@cli.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--file-list",
    "file_lists",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file list (TSV, CSV or PageTab JSON) to check as well; repeatable.",
)
@click.pass_context
def validate(ctx: click.Context, records: tuple[Path, ...], file_lists: tuple[Path, ...]) -> None:
    """Validate study metadata (PageTab JSON/TSV or REMBI JSON/YAML) and file lists; store nothing."""
    from catalog.records import DocumentLimits, read_limited
    from catalog.validation import check_study_record
    from loaders.deposit_formats import DefaultFormats

    settings = _settings(ctx)
    formats = DefaultFormats(DocumentLimits(max_bytes=settings.max_metadata_bytes))
    failed = 0
    for path in records:
        try:
            parsed = formats.read_metadata(str(path), read_limited(path, settings.max_metadata_bytes))
        except CatalogError as exc:
            failed += 1
            click.echo(_format_error(exc), err=True)
            continue
        record = dict(parsed.record)
        if not record.get("release_date"):
            from catalog.archive import today_iso

            record["release_date"] = today_iso()
            click.echo(f"{path}: note: no release date; a deposit is released the day it is finalized")
        accession = None if record.get("accession") else f"{settings.accession_prefix}0"
        checked = check_study_record(record, settings.base_url, accession=accession)
        for issue in checked.report.issues:
            click.echo(_format_issue(str(path), parsed.line_of, issue), err=issue.severity == "Violation")
        for note in parsed.notes:
            click.echo(f"{path}: note: {note}")
        if checked.report.conforms:
            click.echo(f"{path}: valid ({len(checked.graph)} triples, {len(checked.report.warnings)} warning(s))")
        else:
            failed += 1
            click.echo(f"{path}: INVALID ({len(checked.report.violations)} error(s))", err=True)
    for path in file_lists:
        rows, problems = formats.check_file_list(str(path), path.name)
        for problem in problems:
            click.echo(_format_detail(problem, str(path)), err=True)
        if problems:
            failed += 1
            click.echo(f"{path}: INVALID ({len(problems)} error(s) in {rows} row(s))", err=True)
        else:
            click.echo(f"{path}: valid ({rows} row(s))")
    sys.exit(1 if failed else 0)


# ----------------------------------------------------------------------------- tokens and deposits


@cli.group()
def token() -> None:
    """Owner tokens for deposits."""


@token.command("create")
@click.argument("name")
@click.pass_context
def token_create(ctx: click.Context, name: str) -> None:
    """Create a bearer token for the owner NAME; the token is printed on the last line."""
    from catalog.registry import token_id

    registry = _registry(ctx)
    try:
        value = registry.create_token(name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"token {token_id(value)} for {name} (keep it secret; it is shown only once):")
    click.echo(value)


@token.command("list")
@click.option("--owner", help="Only this owner's tokens.")
@click.pass_context
def token_list(ctx: click.Context, owner: str | None) -> None:
    """List tokens: id (not secret; names the token to revoke), owner, created (UTC). Tokens are not shown."""
    rows = _registry(ctx).tokens(owner)
    click.echo(f"{'ID':<14}{'OWNER':<24}CREATED")
    for row in rows:
        click.echo(f"{row.id:<14}{row.owner:<24}{row.created_at}")


@token.command("revoke")
@click.argument("token_id", required=False)
@click.option("--owner", help="Revoke every token of this owner.")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str | None, owner: str | None) -> None:
    """Revoke the token with id TOKEN_ID (from `bia token list`), or every token of --owner; requests with a
    revoked token get 401 at once."""
    if (token_id is None) == (owner is None):
        raise click.UsageError("give a token id or --owner NAME (one of them)")
    for row in _registry(ctx).revoke_tokens(token_id=token_id, owner=owner):
        click.echo(f"revoked {row.id} of {row.owner} (created {row.created_at})")


def _registry(ctx: click.Context) -> Registry:
    from catalog.registry import Registry
    from catalog.state_db import open_state_db

    settings = _settings(ctx)
    return Registry(open_state_db(settings.database_url, settings.data_dir))


@cli.command()
@click.argument("metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--file-list",
    "file_lists",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file list (TSV, CSV or PageTab JSON) with a path column; repeatable.",
)
@click.option(
    "--files",
    "files_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder whose files are uploaded (paths relative to it).",
)
@click.option("--release-date", help="YYYY-MM-DD; before it the study is visible only to its owner.")
@click.option("--token", envvar="BIA_TOKEN", help="Owner token [env BIA_TOKEN].")
@click.option(
    "--server",
    envvar="BIA_SERVER",
    help="Hand the deposit to the catalog server at this URL over its HTTP API (needs --token) instead of writing "
    "into --data; for a catalog a running server holds [env BIA_SERVER].",
)
@click.pass_context
def deposit(
    ctx: click.Context,
    metadata: Path,
    file_lists: tuple[Path, ...],
    files_dir: Path | None,
    release_date: str | None,
    token: str | None,
    server: str | None,
) -> None:
    """Deposit a study; prints the new accession on the last line. On any error nothing is stored."""
    from api.cli_beside_server import server_url, writable
    from api.services import open_services

    from catalog.deposits import Upload

    top = files_dir or Path(".")
    paths = sorted(p for p in top.rglob("*") if p.is_file()) if files_dir is not None else []
    if server:
        _deposit_over_http(server, token, metadata, file_lists, [(p.relative_to(top).as_posix(), p) for p in paths], release_date)
        return
    settings = writable(
        _settings(ctx),
        "deposit",
        instead=lambda: (
            "hand the deposit to the server over HTTP: "
            + _deposit_command(server_url(_settings(ctx)), metadata, file_lists, files_dir, release_date)
        ),
    )
    with open_services(settings) as services:
        owner = services.archive.registry.owner_of_token(token)
        with contextlib.ExitStack() as lists, _upload_bar(paths) as bar:
            outcome = services.deposits.deposit(
                owner,
                (str(metadata), metadata.read_bytes()),
                file_lists=[(f.name, lists.enter_context(f.open("rb"))) for f in file_lists],
                uploads=[Upload(p.relative_to(top).as_posix(), _opener(p), p.stat().st_size) for p in paths],
                release_date=release_date,
                check=_show_warnings,
                progress=bar.update,
            )
        accession = outcome.accession
        services.follow()
        if outcome.kept:  # cut off by an outage: it completes once the stores answer again
            click.echo(f"error: {outcome.reason}", err=True)
            click.echo(
                f"note: the deposit is kept as {accession} and completes when the stores answer again "
                "(`bia recover`, or the server by itself)",
                err=True,
            )
            ctx.exit(2)
        row = services.archive.registry.study(accession)
        state = "released" if row and row.is_public else f"under embargo until {row.release_date if row else '?'}"
        click.echo(f"deposited {row.file_count if row else 0} file(s); {state}")
        click.echo(accession)


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    """How a deposit opens a file to upload, when its turn comes."""
    return lambda: path.open("rb")


def _show_warnings(report: dict) -> None:
    for warning in report["warnings"]:
        click.echo(_format_detail({**warning, "severity": "warning"}), err=True)


def _upload_bar(paths: list[Path]):
    """A progress bar of the bytes uploaded (on a terminal only)."""
    from tqdm import tqdm

    return tqdm(
        total=sum(p.stat().st_size for p in paths),
        unit="B",
        unit_scale=True,
        desc="upload",
        disable=not paths or not sys.stderr.isatty(),
    )


def _deposit_over_http(
    server: str,
    token: str | None,
    metadata: Path,
    file_lists: tuple[Path, ...],
    uploads: list[tuple[str, Path]],
    release_date: str | None,
) -> None:
    """``bia deposit --server``: the deposit handed to a running server over its HTTP API."""
    from api.deposit_client import DepositClient

    if not token:
        raise click.UsageError("--server needs the owner's token: --token TOKEN or BIA_TOKEN (`bia token create NAME`)")
    with _upload_bar([p for _, p in uploads]) as bar:
        done = DepositClient(server, token).deposit(
            metadata,
            file_lists=list(file_lists),
            uploads=uploads,
            release_date=release_date,
            check=_show_warnings,
            progress=bar.update,
        )
    state = "released" if done.state == "released" else f"under embargo until {done.release_date}"
    click.echo(f"deposited {done.files} file(s) at {done.url}; {state}")
    click.echo(done.accession)


def _deposit_command(
    url: str, metadata: Path, file_lists: tuple[Path, ...], files_dir: Path | None, release_date: str | None
) -> str:
    """The ``bia deposit --server`` command line that hands this deposit to the server at ``url``."""
    import shlex

    words = ["bia", "deposit", "--server", url, "--token", "TOKEN", str(metadata)]
    for listing in file_lists:
        words += ["--file-list", str(listing)]
    if files_dir is not None:
        words += ["--files", str(files_dir)]
    if release_date:
        words += ["--release-date", release_date]
    return " ".join(word if word == "TOKEN" else shlex.quote(word) for word in words)


# ----------------------------------------------------------------------------- harvests

_HEADERS_HELP = (
    "Also queue a read of the image headers of the harvested studies' files, and their previews and OME-Zarr, by HTTP"
    " Range requests to their source archive's file server (BIA_HEADER_SOURCES); `bia work` or a serving process does"
    " them."
)


@cli.command()
@click.argument("kind", type=click.Choice(["pagetab", "empiar", "idr", "legacy", "rocrate"]))
@click.argument("items", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--metadata-only", is_flag=True, help="Load records without their file lists (file tables stay empty).")
@click.option("--headers", is_flag=True, help=_HEADERS_HELP)
@click.pass_context
def harvest(ctx: click.Context, kind: str, items: tuple[str, ...], as_json: bool, metadata_only: bool, headers: bool) -> None:
    """Load records of another resource: local files/folders, URLs, or identifiers fetched from the source
    (S-BIAD590 from BioStudies, EMPIAR-10934 from EMPIAR, idr0004-thorpe-rad52 from the IDR metadata).

    Unchanged records are skipped; the exit status is 1 when any item failed."""
    import json

    from tqdm import tqdm

    from api.services import open_services
    from loaders.harvest import Harvester

    from api.cli_beside_server import writable

    settings = writable(_settings(ctx), f"harvest {kind} …")
    with (
        open_services(settings) as services,
        tqdm(total=len(items), unit="record", desc=f"harvest {kind}", disable=not sys.stderr.isatty()) as bar,
    ):
        harvester = Harvester(services.archive, metadata_only=metadata_only)
        summary = harvester.run(kind, list(items), progress=lambda _item: bar.update())
        services.follow()  # links follow the catalog: rebuilt after any change
        queued = _queue_headers(services, summary.loaded + summary.unchanged) if headers else None
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), **({"headers": vars(queued)} if queued else {})}, indent=2))
    else:
        for item, reason in summary.failed:
            click.echo(f"failed: {item}: {reason}", err=True)
        click.echo(f"loaded {len(summary.loaded)}, unchanged {len(summary.unchanged)}, failed {len(summary.failed)}")
        if queued is not None:
            _report_headers(queued)
    sys.exit(1 if summary.failed else 0)


def _queue_headers(services: Services, accessions: list[str] | None) -> HarvestedQueued:
    """Queue header reads, previews and OME-Zarr conversions of harvested studies' files (``accessions``; None:
    all)."""
    from catalog.jobs import JobQueue
    from loaders.image_headers.job import enqueue_harvested
    from loaders.ngff import job as ome_zarr_job
    from loaders.previews import job as previews_job

    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        queued = enqueue_harvested(queue, services.archive, accessions)
        queued.previews = previews_job.enqueue_harvested(queue, services.archive, queued.studies)
        queued.ome_zarr = ome_zarr_job.enqueue_harvested(queue, services.archive, queued.studies)
        return queued
    finally:
        queue.close()


def _report_headers(queued: HarvestedQueued) -> None:
    click.echo(
        f"queued {queued.jobs} header reads, {queued.previews} previews and {queued.ome_zarr} OME-Zarr conversions"
        f" of {len(queued.studies)} harvested studies (`bia work` does them)"
    )
    if queued.no_source:
        shown = ", ".join(queued.no_source[:10]) + (" …" if len(queued.no_source) > 10 else "")
        click.echo(f"no file server known for {len(queued.no_source)} studies: {shown}", err=True)


# ----------------------------------------------------------------------------- maintenance


@cli.command()
@click.pass_context
def link(ctx: click.Context) -> None:
    """Rebuild the cross-resource links of the released catalog (asserted and inferred, each with evidence)."""
    from api.cli_beside_server import writable
    from api.services import open_services
    from linkers.discover import link_catalog

    with open_services(writable(_settings(ctx), "link", by_itself=True)) as services:
        report = link_catalog(services.archive)
    for kind, n in report.by_kind.items():
        click.echo(f"  {kind}: {n}")
    click.echo(f"{report.studies} studies: {report.asserted} asserted links, {report.inferred} inferred links")


@cli.command()
@click.argument("accession", required=False)
@click.option(
    "--format",
    "fmt",
    default="nquads",
    type=click.Choice(["nquads", "ntriples", "turtle", "trig", "rdfxml", "jsonld"]),
    show_default=True,
)
@click.pass_context
def export(ctx: click.Context, accession: str | None, fmt: str) -> None:
    """Write the public graph (every released study), or one released study, to standard output (beside a running
    server too: from its published snapshot)."""
    from api.cli_beside_server import open_read_only

    media = {
        "nquads": "application/n-quads",
        "ntriples": "application/n-triples",
        "turtle": "text/turtle",
        "trig": "application/trig",
        "rdfxml": "application/rdf+xml",
        "jsonld": "application/ld+json",
    }[fmt]
    with open_read_only(_settings(ctx)) as services:
        services.archive.export(sys.stdout.buffer, media, accession)


@cli.command()
@click.option(
    "--headers", is_flag=True, help=_HEADERS_HELP.replace("the harvested studies' files", "every harvested study's files")
)
@click.pass_context
def reindex(ctx: click.Context, headers: bool) -> None:
    """Rebuild the search indexes, file tables and rendered records from the graph stores."""
    from api.cli_beside_server import writable
    from api.services import open_services

    with open_services(writable(_settings(ctx), "reindex")) as services:
        counts = services.archive.reindex()
        queued = _queue_headers(services, None) if headers else None
    click.echo(", ".join(f"{name}: {n} studies" for name, n in counts.items()))
    if queued is not None:
        _report_headers(queued)


@cli.command()
@click.option("--today", help="Pretend today is this date (YYYY-MM-DD).")
@click.pass_context
def release(ctx: click.Context, today: str | None) -> None:
    """Release every study whose release date has come (the server also does this by itself)."""
    from api.services import open_services
    from catalog.dates import parse_date

    from api.cli_beside_server import writable

    if today is not None:
        today = parse_date(today, "--today")
    with open_services(writable(_settings(ctx), "release", by_itself=True)) as services:
        released = services.maintenance.release(today)
    click.echo(
        f"released {len(released)} stud{'y' if len(released) == 1 else 'ies'}" + (": " + " ".join(released) if released else "")
    )


@cli.command()
@click.option("--once", is_flag=True, help="Run one round of duties (if no other process holds them) and stop.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Do the catalog's background duties (recovery, releases, link runs, re-rendering, clean-up) until stopped
    (SIGTERM or Ctrl-C). One process of a site acts at a time, the holder of the maintenance lease; others stand by
    and take over if it dies. Run API nodes with BIA_BACKGROUND=off so that only workers do these duties."""
    import signal
    import threading

    from api.services import open_services
    from catalog.maintenance import LEASE

    with open_services(_settings(ctx), recover=False) as services:
        if once:
            if not services.archive.registry.try_lease(LEASE):
                raise click.ClickException("another process holds the background duties (the maintenance lease)")
            done = services.maintenance.run_once()
            click.echo(
                f"recovered {len(done.recovered)}, released {len(done.released)}, rendered {done.rendered}, "
                f"expired {len(done.expired)}, purged {done.purged}" + (f"; errors: {done.errors}" if done.errors else "")
            )
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        services.maintenance.start()
        click.echo(
            f"worker {services.archive.registry.holder} doing background duties every "
            f"{services.archive.settings.maintenance_interval:g} s while it holds the maintenance lease"
        )
        stop.wait()


@cli.command()
@click.option("--kinds", help="Comma-separated job kinds to work on [default: every registered kind].")
@click.option("--once", is_flag=True, help="Stop when no job is ready instead of waiting for more.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 256), help="Worker processes.")
@click.option("--batch", default=64, show_default=True, type=click.IntRange(1, 1000), help="Jobs a worker claims at once.")
@click.pass_context
def work(ctx: click.Context, kinds: str | None, once: bool, processes: int, batch: int) -> None:
    """Do queued jobs (e.g. reading image headers) until stopped (SIGTERM or Ctrl-C), in any number of processes
    on any number of machines: each job is claimed by one worker at a time under a lease, and a job whose worker
    died is taken up again. `bia serve` also runs one worker in the background unless BIA_BACKGROUND=off."""
    from catalog import jobs

    known = jobs.kinds()
    names = [name.strip() for name in kinds.split(",") if name.strip()] if kinds else list(known)
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise click.UsageError(
            (f"unknown job kind(s): {', '.join(unknown)}; " if unknown else "no job kinds are registered; ")
            + f"registered: {', '.join(sorted(known)) or 'none'} (installed packages add theirs as `bia.jobs` entry points)"
        )
    settings = _settings(ctx)
    if processes == 1:
        tally = _work(settings, names, once, batch)
    else:
        tally = _work_in_processes(settings, names, once, batch, processes)
    click.echo(f"jobs {tally}")


def _work(settings: Settings, names: list[str], once: bool, batch: int):
    """Run one worker in this process until SIGTERM/SIGINT (``once``: until no job is ready); its tally."""
    import signal
    import threading

    from catalog import jobs
    from catalog.state_db import open_state_db
    from catalog.state_schema import ensure_schema

    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    state = open_state_db(settings.database_url, settings.data_dir)
    try:
        ensure_schema(state)
        known = jobs.kinds()
        worker = jobs.Worker(
            jobs.JobQueue.for_settings(state, settings),
            jobs.handlers(settings, names),
            versions={name: known[name].version for name in names},
            batch=batch,
            poll_seconds=settings.job_poll_seconds,
            journal=jobs.journal_folder(settings),
        )
        try:
            return worker.run(stop, once=once)
        finally:
            worker.close()
    finally:
        state.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _work_process(settings: Settings, names: list[str], once: bool, batch: int, tallies) -> None:
    tallies.put(vars(_work(settings, names, once, batch)))


def _work_in_processes(settings: Settings, names: list[str], once: bool, batch: int, processes: int):
    """Run ``processes`` workers in forked processes (registered kinds carry over) until they end; SIGTERM/SIGINT
    is passed on to them. Their added tally."""
    import multiprocessing
    import os
    import queue
    import signal

    from catalog.jobs import Tally

    context = multiprocessing.get_context("fork")
    tallies = context.Queue()
    children = [context.Process(target=_work_process, args=(settings, names, once, batch, tallies)) for _ in range(processes)]
    for child in children:
        child.start()

    def pass_on(signum, _frame) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGTERM, signal.SIGINT)}
    total, reported = Tally(), 0
    try:
        while reported < processes:
            try:
                total.add(Tally(**tallies.get(timeout=0.5)))
                reported += 1
            except queue.Empty:
                if not any(child.is_alive() for child in children) and tallies.empty():
                    break
        for child in children:
            child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [child.exitcode for child in children if child.exitcode]
    if failed:
        raise click.ClickException(f"{len(failed)} worker process(es) failed (exit status {failed})")
    return total


@cli.command()
@click.option("--failed", "show_failed", is_flag=True, help="Also list failed jobs with their reasons (newest first).")
@click.option("--kind", help="Only failures of this kind (with --failed or --retry).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="Most failures listed.")
@click.option("--retry", is_flag=True, help="Queue the failed jobs (of --kind) again with their attempts reset.")
@click.option("--json", "as_json", is_flag=True, help="Print counts (and failures) as JSON.")
@click.pass_context
def jobs(ctx: click.Context, show_failed: bool, kind: str | None, limit: int, retry: bool, as_json: bool) -> None:
    """Counts of jobs by kind and state (queued, running, done, failed), and failed jobs with their reasons."""
    import json

    from catalog.jobs import STATES, JobQueue
    from catalog.state_db import open_state_db
    from catalog.state_schema import ensure_schema

    settings = _settings(ctx)
    state = open_state_db(settings.database_url, settings.data_dir)
    queue = JobQueue.for_settings(state, settings)
    try:
        ensure_schema(state)
        retried = queue.retry_failed(kind) if retry else None
        counts = queue.counts()
        failures = queue.failures(limit, kind) if show_failed else []
    finally:
        queue.close()
        state.close()
    if as_json:
        answer: dict = {"counts": counts, "total": {s: sum(c[s] for c in counts.values()) for s in STATES}}
        if show_failed:
            answer["failures"] = [_failure_dict(job) for job in failures]
        if retried is not None:
            answer["retried"] = retried
        click.echo(json.dumps(answer, indent=2))
        return
    if retried is not None:
        click.echo(f"queued {retried} failed job(s) again")
    width = max([len("KIND"), *map(len, counts)])
    click.echo(f"{'KIND':<{width}}  " + "  ".join(f"{s.upper():>8}" for s in STATES))
    for name, by_state in counts.items():
        click.echo(f"{name:<{width}}  " + "  ".join(f"{by_state[s]:>8}" for s in STATES))
    for job in failures:
        click.echo(f"failed: {job.kind} {job.version} {job.study} {job.file_key} ({job.attempts} attempt(s)): {job.reason}")


def _failure_dict(job) -> dict:
    import datetime as dt

    return {
        "kind": job.kind,
        "version": job.version,
        "study": job.study,
        "file": job.file_key,
        "attempts": job.attempts,
        "reason": job.reason,
        "failed_at": dt.datetime.fromtimestamp(job.updated or 0, dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


@cli.command()
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Counts of the public catalog (those of /stats) and of the registry by lifecycle state, as JSON (beside a
    running server too)."""
    import json

    from api.cli_beside_server import open_read_only
    from catalog.stats import catalog_stats

    with open_read_only(_settings(ctx)) as services:
        click.echo(json.dumps(catalog_stats(services.archive, registry=True), indent=2, sort_keys=True))


@cli.command()
@click.argument("accession")
@click.pass_context
def previews(ctx: click.Context, accession: str) -> None:
    """Queue the thumbnails and static views of a study's image files (those this renderer has not made yet), and
    for a harvested study their OME-Zarr too; `bia work` (or the server's background worker) makes them."""
    from catalog.archive import EMBARGOED, RELEASED
    from catalog.jobs import JobQueue
    from catalog.views import PRIVATE, PUBLIC

    from loaders.image_headers.remote import source_of
    from loaders.ngff import job as ome_zarr_job
    from loaders.previews.job import enqueue_harvested

    from api.services import open_services, queue_previews

    with open_services(_settings(ctx), recover=False) as services:
        archive = services.archive
        row = archive.registry.study(accession)
        if row is None or row.state not in (RELEASED, EMBARGOED):
            raise click.ClickException(f"{accession}: no committed study has this accession")
        held = archive.holds_files(accession, PUBLIC if row.state == RELEASED else PRIVATE)
        if not held and (row.source == "deposit" or source_of(accession) is None):
            raise click.ClickException(f"{accession}: neither the archive nor a configured source holds this study's files")
        queue = JobQueue.for_settings(archive.state, archive.settings)
        converted = None
        try:
            if held:
                added = queue_previews(archive, queue, accession, PUBLIC if row.state == RELEASED else PRIVATE)
            else:  # a harvested study: its files are read by range from their source archive
                added = enqueue_harvested(queue, archive, [accession])
                converted = ome_zarr_job.enqueue_harvested(queue, archive, [accession])
        finally:
            queue.close()
    click.echo(f"queued previews of {added} file(s) of {accession}")
    if converted is not None:
        click.echo(f"queued OME-Zarr conversions of {converted} file(s) of {accession}")


@cli.command()
@click.argument("query", nargs=-1)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FACET=VALUE",
    help="Only studies with this facet value, e.g. organism='Homo sapiens'; repeatable.",
)
@click.option("--sort", default="relevance", show_default=True, type=click.Choice(["relevance", "newest", "oldest"]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="Most studies listed.")
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@click.pass_context
def search(ctx: click.Context, query: tuple[str, ...], filters: tuple[str, ...], sort: str, limit: int, as_json: bool) -> None:
    """Search the released studies as /search does (words, "phrases", prefix*, field:word, OR, -word); beside a
    running server too. Prints accession, release date and title of each match (`bia search -- actin -mouse`: a
    word to exclude after `--`)."""
    import json

    from api.cli_beside_server import open_read_only

    facets: dict[str, list[str]] = {}
    for given in filters:
        name, sep, value = given.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{given!r} is not FACET=VALUE", param_hint="--filter")
        facets.setdefault(name.strip(), []).append(value)
    with open_read_only(_settings(ctx)) as services:
        found = services.archive.public.search.search(" ".join(query), facets, sort=sort, limit=limit, facet_fields=())
    if as_json:
        hits = [{"accession": h.accession, "title": h.title, "release_date": h.document.release_date} for h in found.hits]
        click.echo(json.dumps({"total": found.total, "hits": hits}, indent=2, ensure_ascii=False))
        return
    for hit in found.hits:
        click.echo(f"{hit.accession:<24}{hit.document.release_date or '':<12}{hit.title}")
    click.echo(
        f"{found.total} stud{'y' if found.total == 1 else 'ies'}"
        + (f" ({len(found.hits)} shown)" if found.total > len(found.hits) else "")
    )


@cli.command()
@click.pass_context
def recover(ctx: click.Context) -> None:
    """Finish (or undo) now every commit, release or finalize a crash or an outage cut off. Work a live process
    holds is left alone; `bia serve` does this in the background by itself."""
    from api.services import open_services

    from api.cli_beside_server import writable

    with open_services(writable(_settings(ctx), "recover", by_itself=True), recover=False) as services:
        handled = services.maintenance.recover()
        services.follow()
        waiting = [r.accession for r in services.archive.registry.studies(states=("finalizing", "releasing"))]
    click.echo(f"recovered {len(handled)}" + (": " + " ".join(handled) if handled else ""))
    if waiting:
        click.echo(f"still in flight (held by a live process, or waiting for a store): {' '.join(waiting)}")


@cli.command()
@click.pass_context
def cleanup(ctx: click.Context) -> None:
    """Expire submissions left open longer than BIA_SUBMISSION_TTL_DAYS (and failed ones), removing their staged
    files; remove uploads and loads a crash cut off. `bia serve` does this in the background by itself."""
    from api.services import open_services

    from api.cli_beside_server import writable

    with open_services(writable(_settings(ctx), "cleanup", by_itself=True), recover=False) as services:
        expired, purged = services.maintenance.clean()
    click.echo(
        f"expired {len(expired)} submission(s)"
        + (": " + " ".join(expired) if expired else "")
        + f"; removed {purged} leftover(s) of interrupted uploads and loads"
    )


# ----------------------------------------------------------------------------- image headers


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array with an object per file.")
@click.option("--workers", type=int, help="Sandboxed reader processes [env BIA_HEADER_WORKERS; default: one per core].")
@click.option("--timeout", type=float, help="Seconds a file may take before its reader is killed [env BIA_HEADER_TIMEOUT; 10].")
@click.option("--max-bytes", type=int, help="Bytes read from one file at most [env BIA_HEADER_MAX_BYTES; 32 MiB].")
@click.option("--max-memory-mb", type=int, help="Address space of a reader process [env BIA_HEADER_MAX_MEMORY_MB; 1024].")
@click.option("--max-images", type=int, default=20, show_default=True, help="Images described per file (text only).")
@click.pass_context
def headers(
    ctx: click.Context,
    paths: tuple[Path, ...],
    as_json: bool,
    workers: int | None,
    timeout: float | None,
    max_bytes: int | None,
    max_memory_mb: int | None,
    max_images: int,
) -> None:
    """Print what image files say about themselves: dimensions, pixel type and size, channels, instrument.

    TIFF and OME-TIFF, OME-XML, MRC/MAP (also gzipped), PNG, JPEG and OME-Zarr stores; a folder that is not a Zarr
    store stands for the files below it. Each file is read in a sandboxed worker process with caps on bytes read,
    time and memory; a file that is malformed or passes a cap is reported unreadable. The exit status is 1 when any
    file is unreadable or of a format no reader knows."""
    import json

    from loaders.image_headers.pool import HeaderCaps, HeaderPool
    from loaders.image_headers.text import describe, image_paths

    settings = _settings(ctx).with_(
        **{
            name: value
            for name, value in {
                "header_workers": workers,
                "header_timeout": timeout,
                "header_max_bytes": max_bytes,
                "header_max_memory_mb": max_memory_mb,
            }.items()
            if value is not None
        }
    )
    failed = 0
    with HeaderPool(settings.header_workers or None, HeaderCaps.from_settings(settings)) as pool:
        if as_json:
            click.echo("[")
        for number, found in enumerate(pool.read_many(image_paths(paths))):
            failed += found.status != "ok"
            if as_json:
                click.echo(("," if number else "") + json.dumps(found.to_dict(), ensure_ascii=False))
            else:
                click.echo("\n".join(describe(found, max_images)))
        if as_json:
            click.echo("]")
    sys.exit(1 if failed else 0)


def _format_issue(path: str, line_of, issue) -> str:
    if issue.source == "linkml":
        location = issue.focus.rstrip("/") + ("/" + issue.path if issue.path else "")
        line = line_of(location)
        where = f"{path}:{line}" if line else path
        return f"{where}: {issue.severity.lower()}: field {location or '/'}: {issue.message}"
    field_name = f" field <{issue.path}>" if issue.path else ""
    value = f" (value: {issue.value})" if issue.value else ""
    return f"{path}: {issue.severity.lower()}: node <{issue.focus}>{field_name}: {issue.message}{value}"


def _format_detail(detail: dict, default_file: str | None = None) -> str:
    """``file:line: field: message (value)`` from an error detail dict."""
    file = detail.get("file") or default_file
    where = f"{file}:{detail['line']}" if file and detail.get("line") else (file or "")
    node = f" node <{detail['node']}>" if detail.get("node") else ""
    field_name = f" field {detail['field']}" if detail.get("field") else ""
    value = f" (value: {detail['value']})" if detail.get("value") not in (None, "") else ""
    severity = str(detail.get("severity", "error")).lower().replace("violation", "error")
    return f"{where}: {severity}:{node}{field_name}: {detail.get('message', '')}{value}".lstrip(": ")


def _format_error(exc: CatalogError) -> str:
    lines = [f"error: {exc.message}"]
    lines.extend("  " + _format_detail(detail) for detail in exc.errors)
    return "\n".join(lines)


def main() -> None:
    """Entry point of the ``bia`` console script."""
    cli(obj={})


# ----------------------------------------------------------------------------- serving


def load_demo(services) -> str:
    """Load the demo catalog (:mod:`api.demo_loader`: the bundled records harvested, a study with real files
    deposited; idempotent); returns a one-line summary and tells of failures on stderr."""
    from api.demo_loader import load_demo as load

    return load(services, echo=lambda message: click.echo(message, err=True)).summary()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="BIA_HOST", help="Interface to listen on [env BIA_HOST].")
@click.option("--port", default=5000, show_default=True, type=int, envvar="BIA_PORT", help="Port [env BIA_PORT].")
@click.option(
    "--demo",
    is_flag=True,
    help="First load the demo: the bundled real sample studies (PageTab, EMPIAR, IDR, RO-Crate) and a deposit of real image files.",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, demo: bool) -> None:
    """Serve the catalog over HTTP (embedded stores by default). For production use gunicorn (see README)."""
    import os

    from api.app import create_app
    from api.services import open_services
    from catalog.remembered import minted_base_url

    settings = _settings(ctx)
    explicit = os.environ.get("BIA_BASE_URL") or (ctx.parent and ctx.parent.params.get("base_url"))
    minted = None if explicit else minted_base_url(settings)
    if minted:
        settings = settings.with_(base_url=minted)  # an existing catalog keeps its IRIs
    elif not explicit:
        public_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
        settings = settings.with_(base_url=f"http://{public_host}:{port}")
    services = open_services(settings, recover=False)  # recovery runs in the background, /health answers meanwhile
    if demo:
        click.echo(load_demo(services))
        services.follow()
    app = create_app(settings, services=services)
    if services.jobs is not None:
        click.echo(f"doing jobs of {', '.join(sorted(services.jobs.handlers))} in the background (BIA_BACKGROUND=off: not)")
    click.echo(f"serving {settings.data_dir} at http://{host}:{port}/ (IRIs under {settings.base_url})")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        app.extensions["bia.sparql"].close()
        services.close()


if __name__ == "__main__":
    main()
