"""SQL lives only in receiver/store/: the check `.ci/run` runs passes here and catches a
statement elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / ".ci" / "sql_outside_store"


def run_check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / ".ci" / "sql_outside_store")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_tree_has_no_sql_outside_the_store() -> None:
    """`.ci/sql_outside_store` passes on this checkout."""
    done = run_check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_statement_or_dialect_check_outside_the_store_fails_the_check(tmp_path: Path) -> None:
    """A repository with SQL in receiver/ or a dialect check in handlers/ fails, and the
    offending lines are printed; the same SQL inside receiver/store/ is fine."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(CHECK, tmp_path / ".ci" / CHECK.name)
    files = {
        "receiver/store/ok.py": 'Q = "SELECT id FROM events"\n',
        "receiver/ops.py": 'Q = "UPDATE events SET state = ?"\n',
        "handlers/mine.py": 'if store.dialect == "postgres":\n    pass\n',
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    done = run_check(tmp_path)
    assert done.returncode == 1
    assert "receiver/ops.py:1:" in done.stdout
    assert "handlers/mine.py:1:" in done.stdout
    assert "receiver/store/ok.py" not in done.stdout
