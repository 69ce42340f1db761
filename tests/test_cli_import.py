"""The real `acuerdo import-portfolio` and `import-payments` commands, as operators run them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PINNED_NOW, REPO_ROOT
from tests.test_import_portfolio import portfolio_row, write_csv

ACUERDO = REPO_ROOT / ".venv" / "bin" / "acuerdo"
DEMO = REPO_ROOT / "bot" / "demo"


class Cli:
    """Runs ``acuerdo`` against its own SQLite file, in an empty working directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database = workdir / "acuerdo.db"
        settings = ("ACUERDO_", "WHATSAPP_", "RCS_", "PAYMENTS_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(settings)}
        self.env.update(
            ACUERDO_DATABASE_URL=f"sqlite:///{self.database}",
            ACUERDO_SANDBOX="1",  # the sandbox's built-in secrets
            ACUERDO_NOW=PINNED_NOW,
            ACUERDO_POLICY_FILE=str(REPO_ROOT / "policy.yml"),
            ACUERDO_VAR_DIR=str(workdir / "var"),
            NO_COLOR="1",
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ACUERDO), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def account_ids(self) -> list[str]:
        with sqlite3.connect(self.database) as db:
            return [row[0] for row in db.execute("SELECT external_id FROM accounts ORDER BY 1")]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path)
    migrated = runner("migrate")
    assert migrated.returncode == 0, migrated.stderr
    return runner


def test_twenty_rows_with_three_bad_loads_seventeen_and_names_the_lines(cli, tmp_path) -> None:
    known = [portfolio_row(n) for n in (1, 2, 3, 5, 6)]
    assert cli("import-portfolio", str(write_csv(tmp_path / "known.csv", known))).returncode == 0
    rows = [portfolio_row(n, principal="9999.99") for n in range(1, 21)]
    rows[3] = portfolio_row(4, phone="+1 212 555")  # line 5
    rows[10] = portfolio_row(11, birth_date="31/12/1985")  # line 12
    rows[16] = portfolio_row(17, principal="-1500.00")  # line 18

    result = cli("import-portfolio", str(write_csv(tmp_path / "portfolio.csv", rows)))

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "Loaded 17 rows (12 new, 5 updated); rejected 3:",
        "line 5, column phone: '+1 212 555' is not a Mexican phone number",
        "line 12, column birth_date: '31/12/1985' is not a date in YYYY-MM-DD form",
        "line 18, column principal: '-1500.00' is negative; amounts must be 0 or more",
    ]
    loaded = cli.account_ids()
    assert len(loaded) == 17
    assert not {"ACC-0004", "ACC-0011", "ACC-0017"} & set(loaded)


def test_missing_columns_exit_2_with_one_line_and_load_nothing(cli, tmp_path) -> None:
    header = ["account_id", "full_name", "phone", "creditor", "product", "principal", "due_date"]
    path = write_csv(tmp_path / "portfolio.csv", [portfolio_row(1)], header=header)

    result = cli("import-portfolio", str(path))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: {path}: missing required columns birth_date, interest, fees "
        f"(found: {', '.join(header)})"
    ]
    assert cli.account_ids() == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "does not exist"),
        ("latin1.csv", "account_id,full_name\nA-1,Peña\n".encode("latin-1"), "is not UTF-8"),
        ("empty.csv", b"", "is empty"),
    ],
)
def test_unusable_files_exit_2(cli, tmp_path, name, content, message) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    for command in ("import-portfolio", "import-payments"):
        result = cli(command, str(path))
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr


def test_demo_portfolio_and_payments_load_cleanly_twice(cli) -> None:
    first = cli("import-portfolio", str(DEMO / "portfolio.csv"))
    paid = cli("import-payments", str(DEMO / "payments.csv"))
    second = cli("import-portfolio", str(DEMO / "portfolio.csv"))
    paid_again = cli("import-payments", str(DEMO / "payments.csv"))

    assert [r.returncode for r in (first, paid, second, paid_again)] == [0, 0, 0, 0]
    rows = len((DEMO / "portfolio.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert first.stdout.strip() == f"Loaded {rows} rows ({rows} new, 0 updated)."
    assert second.stdout.strip() == f"Loaded {rows} rows (0 new, {rows} updated)."
    assert paid.stdout.strip().endswith("applied, 0 already applied).")
    assert paid_again.stdout.strip().startswith("Loaded 6 rows (0 applied, 6 already applied)")
    with sqlite3.connect(cli.database) as db:
        assert db.execute("SELECT count(*) FROM payments").fetchone() == (6,)


def test_payments_for_unknown_accounts_exit_1(cli, tmp_path) -> None:
    assert cli("import-portfolio", str(DEMO / "portfolio.csv")).returncode == 0
    path = write_csv(
        tmp_path / "payments.csv",
        [
            {"account_id": "BE-100001", "amount": "100", "paid_at": "2026-11-20", "reference": "X"},
            {"account_id": "ZZ-1", "amount": "100", "paid_at": "2026-11-20", "reference": "Y"},
        ],
        header=["account_id", "amount", "paid_at", "reference"],
    )

    result = cli("import-payments", str(path))

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "Loaded 1 row (1 applied, 0 already applied); rejected 1:",
        "line 3, column account_id: no account 'ZZ-1' in the portfolio (import it first)",
    ]


def test_an_unmigrated_database_is_refused_with_the_fix(tmp_path) -> None:
    runner = Cli(tmp_path)

    result = runner("import-portfolio", str(DEMO / "portfolio.csv"))

    assert result.returncode == 2
    assert "acuerdo migrate" in result.stderr


@pytest.mark.parametrize("command", ["import-portfolio", "import-payments"])
def test_each_command_explains_itself(cli, command) -> None:
    result = cli(command, "--help")

    assert result.returncode == 0
    assert "FILE.csv" in result.stdout
    assert "Exit code 1 when any row was rejected" in result.stdout
