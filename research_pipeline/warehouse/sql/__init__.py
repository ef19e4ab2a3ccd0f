"""The warehouse's longer statements, one file each, read by the modules that run them."""

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent


@cache
def load(name: str) -> str:
    """The text of `sql/<name>.sql`."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
