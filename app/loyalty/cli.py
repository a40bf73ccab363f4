"""`jambo loyalty import FILE.csv` and `jambo loyalty export`: the register as CSV."""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.config import get_settings
from app.errors import DomainError
from app.loyalty.schemas import FIELDS, REQUIRED, render_discount
from app.loyalty.service import LoyaltyService

loyalty_app = typer.Typer(help="Loyalty register import and export.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
SHOWN_REJECTS = 50


@dataclass
class ImportReport:
    """What an import did; rejected rows keep their line number in the file."""

    inserted: int = 0
    updated: int = 0
    rejected: list[tuple[int, dict[str, list[str]]]] = field(default_factory=list)


@asynccontextmanager
async def _service() -> AsyncIterator[LoyaltyService]:
    from app.services import open_services

    async with open_services(get_settings()) as services:
        yield services.loyalty


class MissingColumns(ValueError):
    """The header row lacks a required column."""


def _rows(handle: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every data row; header names are matched without case."""
    reader = csv.DictReader(handle)
    names = {name: name.strip().lower() for name in reader.fieldnames or ()}
    missing = [f for f in REQUIRED if f not in names.values()]
    if missing:
        raise MissingColumns(f"the header row has no {', '.join(missing)} column")
    for row in reader:
        cells = {names[k]: v for k, v in row.items() if k in names}
        yield reader.line_num, {k: v for k, v in cells.items() if k in FIELDS}


async def import_csv(
    service: LoyaltyService,
    handle: TextIO,
    batch_size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> ImportReport:
    """Validate every row, upsert the valid ones in batches through the bulk path."""
    report = ImportReport()
    batch: list[dict[str, Any]] = []
    size = max(1, min(batch_size, service.settings.max_bulk_items))

    async def flush() -> None:
        counts = await service.upsert(batch, actor="cli:loyalty-import")
        report.inserted += counts.inserted
        report.updated += counts.updated
        advance(len(batch))
        batch.clear()

    for line, row in _rows(handle):
        checked = service.validate([row])
        if checked.ok:
            batch.extend(checked.values)
        else:
            report.rejected.append((line, checked.errors[0]))
            advance(1)
        if len(batch) >= size:
            await flush()
    if batch:
        await flush()
    return report


async def export_csv(service: LoyaltyService, out: TextIO) -> int:
    """Write every member as CSV (the import format); returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    count = 0
    async for m in service.export():
        birthday = m.client_birthday.isoformat() if m.client_birthday else ""
        male = "" if m.is_male is None else str(m.is_male).lower()
        writer.writerow(
            [m.loyalty_id, m.cardno or "", render_discount(m.discount) or "", m.client_name or ""]
            + [birthday, male]
        )
        count += 1
    return count


def _count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


@loyalty_app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row")
    ],
    batch_size: Annotated[int, typer.Option(help="Rows per bulk statement")] = 1000,
) -> None:
    """Upsert members from a CSV file (columns: loyalty_id, cardno, discount, client_name,
    client_birthday, is_male); invalid rows are reported with their line numbers."""

    async def run() -> ImportReport:
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"importing {file.name}", total=_count_rows(file))
            async with _service() as service:
                with file.open(encoding="utf-8-sig", newline="") as handle:
                    return await import_csv(
                        service, handle, batch_size, lambda n: progress.advance(task, n)
                    )

    try:
        report = asyncio.run(run())
    except (csv.Error, UnicodeDecodeError, MissingColumns) as exc:
        console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    except DomainError as exc:  # e.g. the database is unreachable
        console.print(f"[red]import failed: {exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"[green]inserted {report.inserted}[/green], [green]updated {report.updated}[/green], "
        f"[{'red' if report.rejected else 'green'}]rejected {len(report.rejected)}[/]"
    )
    for line, errors in report.rejected[:SHOWN_REJECTS]:
        detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())
        console.print(f"  line {line}: {detail}", highlight=False, markup=False)
    if len(report.rejected) > SHOWN_REJECTS:
        console.print(f"  … and {len(report.rejected) - SHOWN_REJECTS} more rejected rows")
    if report.rejected:
        raise typer.Exit(1)


@loyalty_app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
) -> None:
    """Write every member as CSV, in the format `import` reads."""

    async def run(out: TextIO) -> int:
        async with _service() as service:
            return await export_csv(service, out)

    if output is None:
        count = asyncio.run(run(sys.stdout))
    else:
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = asyncio.run(run(handle))
    console.print(f"[green]exported {count} members[/green]")
