"""The ``bia`` command line: serving, deposits, harvests and maintenance of a catalog."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from catalog.config import Settings
from catalog.errors import CatalogError


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), envvar="BIA_DATA",
              help="Folder of the embedded stores and indexes [env BIA_DATA; default ./bia-data].")
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
@click.pass_context
def validate(ctx: click.Context, records: tuple[Path, ...]) -> None:
    """Validate study records (JSON/YAML of the REMBI model) with LinkML and the SHACL shapes."""
    from catalog.records import read_record
    from catalog.validation import check_study_record

    settings = _settings(ctx)
    failed = 0
    for path in records:
        try:
            source = read_record(path)
        except CatalogError as exc:
            failed += 1
            click.echo(_format_error(exc), err=True)
            continue
        checked = check_study_record(source.data, settings.base_url, accession=None)
        for issue in checked.report.issues:
            click.echo(_format_issue(str(path), source, issue), err=issue.severity == "Violation")
        if checked.report.conforms:
            click.echo(f"{path}: valid ({len(checked.graph)} triples, {len(checked.report.warnings)} warning(s))")
        else:
            failed += 1
            click.echo(f"{path}: INVALID ({len(checked.report.violations)} error(s))", err=True)
    sys.exit(1 if failed else 0)


def _format_issue(path: str, source, issue) -> str:
    if issue.source == "linkml":
        location = issue.focus.rstrip("/") + ("/" + issue.path if issue.path else "")
        line = source.line_of(location)
        where = f"{path}:{line}" if line else path
        return f"{where}: {issue.severity.lower()}: field {location or '/'}: {issue.message}"
    field_name = f" field <{issue.path}>" if issue.path else ""
    value = f" (value: {issue.value})" if issue.value else ""
    return f"{path}: {issue.severity.lower()}: node <{issue.focus}>{field_name}: {issue.message}{value}"


def _format_error(exc: CatalogError) -> str:
    lines = [f"error: {exc.message}"]
    for detail in exc.errors:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None))
    return "\n".join(lines)


def main() -> None:
    """Entry point of the ``bia`` console script."""
    try:
        cli(obj={})
    except CatalogError as exc:
        click.echo(_format_error(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
