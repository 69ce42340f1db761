"""Benchmark of ``acuerdo import-portfolio``: a large valid portfolio into a fresh database.

    python -m bench.bench_import              # 100,000 rows
    python -m bench.bench_import --smoke      # 2,000 rows (CI)
    python -m bench.bench_import --rows 25000

Generates a fictional portfolio CSV (fixed seed) in a temporary directory,
imports it into a freshly migrated SQLite file through the command's own code
path, prints rows, seconds, rows/s and peak RSS, and writes them as JSON to
``bench/results/import.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bot.clock import Clock
from bot.db.migrate import upgrade
from bot.importers.commands import run_portfolio_import

PINNED_NOW = "2026-11-23"
SEED = 20261123
SMOKE_ROWS = 2_000
DEFAULT_ROWS = 100_000
RESULTS = Path(__file__).resolve().parent / "results" / "import.json"

FIRST_NAMES = ("María", "José", "Guadalupe", "Juan", "Ana", "Luis", "Rosa", "Carlos", "Sofía")
LAST_NAMES = ("López", "Hernández", "García", "Martínez", "Ramírez", "Torres", "Flores", "Cruz")
CREDITORS = (
    ("Banco Ejemplo", "Tarjeta de crédito"),
    ("Banco Ejemplo", "Préstamo personal"),
    ("Tienda Departamental Demo", "Crédito departamental"),
    ("Financiera Demo", "Crédito de nómina"),
)
ZONES = ("", "", "", "", "America/Tijuana", "America/Cancun")


def write_portfolio(path: Path, rows: int, seed: int = SEED) -> None:
    """A valid portfolio of ``rows`` fictional accounts; about 1 in 20 shares a phone (a second
    account of the same person: same name and birth date, or the import rejects it)."""
    rng = random.Random(seed)
    people: dict[int, tuple[str, str]] = {}
    today = date.fromisoformat(PINNED_NOW)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            [
                "account_id",
                "full_name",
                "phone",
                "birth_date",
                "creditor",
                "product",
                "principal",
                "interest",
                "fees",
                "due_date",
                "minimum_payment",
                "currency",
                "email",
                "timezone",
            ]
        )
        for n in range(rows):
            line = n - 1 if n and rng.random() < 0.05 else n  # a second account, same person
            phone_forms = (f"+52155{20000000 + line:08d}", f"+5255{20000000 + line:08d}")
            phone = rng.choice((*phone_forms, f"55{20000000 + line:08d}"))
            if line not in people:
                people.clear()  # only the previous line's person is ever needed again
                people[line] = (
                    f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} {line}",
                    (today - timedelta(days=rng.randint(20 * 365, 70 * 365))).isoformat(),
                )
            full_name, birth_date = people[line]
            principal = rng.randint(800_00, 150_000_00)
            creditor, product = rng.choice(CREDITORS)
            writer.writerow(
                [
                    f"BENCH-{n:07d}",
                    full_name,
                    phone,
                    birth_date,
                    creditor,
                    product,
                    f"{principal / 100:.2f}",
                    f"{principal * rng.randint(5, 30) / 10_000:.2f}",
                    f"{rng.randint(0, 900)}.00",
                    (today - timedelta(days=rng.randint(-5, 400))).isoformat(),
                    f"{principal / 1000:.2f}",
                    "MXN",
                    f"deudor{line}@example.com" if rng.random() < 0.3 else "",
                    rng.choice(ZONES),
                ]
            )


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(rows: int, output: Path) -> dict[str, object]:
    """Generate, import, measure; returns the figures written to ``output``."""
    with tempfile.TemporaryDirectory(prefix="acuerdo-bench-") as tmp:
        csv_path = Path(tmp) / "portfolio.csv"
        write_portfolio(csv_path, rows)
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(database_url)
        clock = Clock.from_setting(PINNED_NOW, "America/Mexico_City")
        started, cpu_started = time.perf_counter(), time.process_time()
        report = run_portfolio_import(csv_path, database_url, clock, show_progress=False)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    if report.rejected or report.loaded != rows:
        raise SystemExit(f"benchmark data was not all loaded: {report.summary()}")
    result: dict[str, object] = {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        # Wall time depends on what else the machine runs; CPU time much less so.
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "created": report.created,
        "database": "sqlite",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the portfolio import.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    size.add_argument("--smoke", action="store_true", help=f"{SMOKE_ROWS:,} rows, for CI")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    rows = SMOKE_ROWS if args.smoke else args.rows
    if rows < 1:
        parser.error("--rows must be at least 1")
    result = run(rows, args.output)
    print(f"{'rows':>10} {'seconds':>9} {'CPU s':>7} {'rows/s':>9} {'peak RSS':>10}")
    print(
        f"{result['rows']:>10,} {result['seconds']:>9.2f} {result['cpu_seconds']:>7.2f} "
        f"{result['rows_per_second']:>9,} {result['peak_rss_mb']:>7.1f} MB"
    )
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
