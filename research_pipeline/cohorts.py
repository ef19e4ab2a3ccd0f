"""Cohort files: which usernames a researcher follows, read and checked line by line.

A cohort is `<dir>/<name>.txt` (one username per line, `#` starts a comment) or `<dir>/<name>.csv`
(a `username` column). Policy: every bad line is reported with its file and line number and left
out; the valid usernames are kept, once each, in file order (`@Name` and `name` are one user).
Files are read as a stream, so a million-line file costs its unique usernames, not its text.
"""

import csv
import logging
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from research_pipeline.errors import CohortError, InvalidUsernameError
from research_pipeline.planner import TERMS_MAX_DAYS
from research_pipeline.tiktok.usernames import normalize_username
from research_pipeline.wording import plural

log = logging.getLogger(__name__)

COHORT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
COHORT_SUFFIXES = (".txt", ".csv")
MAX_PROBLEMS_KEPT = 1000


def check_cohort_name(name: str) -> str:
    """Cohort names become partition keys and SQL values: only a safe, boring alphabet."""
    if not COHORT_NAME_PATTERN.match(name):
        raise CohortError(
            f"invalid cohort name {name!r}: use 1-64 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit (e.g. 'news_outlets')"
        )
    return name


@dataclass(frozen=True)
class LineProblem:
    path: Path
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason} (line: {self.text[:60]!r})"


@dataclass
class Cohort:
    name: str
    path: Path
    usernames: list[str] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    problem_count: int = 0
    duplicate_count: int = 0

    def report(self, limit: int = 20) -> str:
        lines = [
            f"{self.path}: {plural(len(self.usernames), 'username')}, "
            f"{plural(self.duplicate_count, 'duplicate')} merged, "
            f"{plural(self.problem_count, 'line')} left out"
        ]
        lines += [f"  {problem}" for problem in self.problems[:limit]]
        if self.problem_count > limit:
            lines.append(f"  ... and {self.problem_count - limit} more")
        if self.problem_count:
            lines.append("  Fix or delete those lines; the other usernames are used as they are.")
        return "\n".join(lines)


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | None, bytes]]:
    """(line number, text or None if not UTF-8, raw bytes), handling a BOM and CRLF."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\r\n")
            try:
                yield number, raw.decode("utf-8"), raw
            except UnicodeDecodeError:
                yield number, None, raw


def _text_entries(path: Path) -> Iterator[tuple[int, str | None, str]]:
    for number, text, raw in _decoded_lines(path):
        if text is None:
            yield number, None, raw.decode("utf-8", "replace")
            continue
        entry = text.split("#", 1)[0].strip()
        if entry:
            yield number, entry, text


def _csv_entries(path: Path) -> Iterator[tuple[int, str | None, str]]:
    lines = _decoded_lines(path)
    header = next(lines, None)
    columns = next(csv.reader([header[1] or ""])) if header else []
    columns = [c.strip().lower() for c in columns]
    if "username" not in columns:
        raise CohortError(f"{path}:1: a CSV cohort needs a 'username' column (found: {columns})")
    column = columns.index("username")
    for number, text, raw in lines:
        if text is None:
            yield number, None, raw.decode("utf-8", "replace")
            continue
        if not text.strip():
            continue
        row = next(csv.reader([text]))
        value = row[column].strip() if column < len(row) else ""
        if not value:
            yield number, "", text
        else:
            yield number, value, text


# 1,000 requests a day for 15 days is 15,000 refreshes: a million members is far past what any
# lab's quota can follow, and the bound keeps a pasted 12-million-line file from taking the
# machine's memory (`cohorts add`, `plan` and every run read cohorts whole).
MAX_MEMBERS = 1_000_000


def read_cohort(path: Path, name: str | None = None) -> Cohort:
    path = Path(path)
    name = check_cohort_name(name or path.stem)
    if not path.is_file():
        raise CohortError(f"cohort file {path} does not exist")
    cohort = Cohort(name=name, path=path)
    seen: set[str] = set()
    entries = _csv_entries(path) if path.suffix.lower() == ".csv" else _text_entries(path)
    for number, entry, text in entries:
        if entry is None:
            problem = LineProblem(path, number, text, "not valid UTF-8 text")
        else:
            try:
                username = normalize_username(entry)
            except InvalidUsernameError as exc:
                problem = LineProblem(path, number, text, str(exc))
            else:
                if username in seen:
                    cohort.duplicate_count += 1
                else:
                    if len(cohort.usernames) >= MAX_MEMBERS:
                        raise CohortError(
                            f"{path}:{number}: more than {MAX_MEMBERS:,} members; at the API's "
                            "1,000 requests a day a panel this size could never be refreshed "
                            "within TikTok's 15 days. Split it, or sample it"
                        )
                    seen.add(username)
                    cohort.usernames.append(username)
                continue
        cohort.problem_count += 1
        if len(cohort.problems) < MAX_PROBLEMS_KEPT:
            cohort.problems.append(problem)
    return cohort


def cohort_files(directory: Path) -> dict[str, Path]:
    """Cohort name -> file, for every .txt/.csv in `directory` (not recursive) whose name is a
    valid cohort name; others are left out (the sensor warns about them)."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        is_cohort = path.suffix.lower() in COHORT_SUFFIXES and COHORT_NAME_PATTERN.match(path.stem)
        if is_cohort and path.is_file():
            if path.stem in found:
                raise CohortError(f"two files for cohort {path.stem!r}: {found[path.stem]}, {path}")
            found[path.stem] = path
    return found


def find_cohort(directory: Path, name: str) -> Path:
    check_cohort_name(name)
    files = cohort_files(directory)
    if name not in files:
        known = ", ".join(files) or "none"
        raise CohortError(
            f"no cohort file {name}.txt or {name}.csv in {directory} (cohorts there: {known}); "
            f"add one with `research-pipeline cohorts add {name} FILE`"
        )
    return files[name]


# -- cadences ------------------------------------------------------------------------------------

CADENCE_FILE = "cohorts.toml"
DEFAULT_CADENCE_DAYS = 1
MAX_CADENCE_DAYS = TERMS_MAX_DAYS  # TikTok's terms: refreshed at least every 15 days
_CADENCE_HEADER = """\
# How often each cohort's members are refreshed, in days (default 1). Written by
# `research-pipeline cohorts add NAME FILE --cadence N` and `cohorts cadence NAME N`; edit freely.
# A user in several cohorts is refreshed at the shortest of their cadences, and never less
# often than every 15 days (TikTok's terms).
"""


def read_cadences(directory: Path) -> dict[str, int]:
    """Cohort name -> cadence in days, from `<directory>/cohorts.toml` (absent: all default)."""
    path = Path(directory) / CADENCE_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CohortError(f"{path}: {exc}; fix the file or delete it (cadence 1 day)") from None
    cadences = {}
    for name, table in data.items():
        days = table.get("cadence_days") if isinstance(table, dict) else None
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise CohortError(
                f"{path}: [{name}] needs cadence_days = a whole number of days >= 1 "
                f"(found {days!r})"
            )
        # Over the terms' 15 days (a file edited by hand): 15, the same in every command.
        cadences[check_cohort_name(name)] = min(days, MAX_CADENCE_DAYS)
    return cadences


def read_cadences_or_set_aside(directory: Path) -> dict[str, int]:
    """The cadences for a day's run: a cohorts.toml that cannot be read is moved aside
    (`cohorts.toml.rejected`) and named in one warning, and every cohort takes the default
    cadence, rather than the day being lost (`cohorts cadence` writes a new file)."""
    try:
        return read_cadences(directory)
    except CohortError as exc:
        path = Path(directory) / CADENCE_FILE
        aside = path.with_name(CADENCE_FILE + ".rejected")
        os.replace(path, aside)
        log.warning(
            "%s; moved aside to %s: every cohort is asked at the default cadence (%d day) until "
            "`research-pipeline cohorts cadence NAME DAYS` writes a new one",
            exc,
            aside,
            DEFAULT_CADENCE_DAYS,
        )
        return {}


def write_cadence(directory: Path, name: str, days: int) -> Path:
    """Set cohort `name`'s cadence in `<directory>/cohorts.toml`, keeping the others."""
    if not 1 <= days <= MAX_CADENCE_DAYS:
        raise CohortError(
            f"cadence of {name}: {days} days; use a whole number of days from 1 to "
            f"{MAX_CADENCE_DAYS} (TikTok's terms: data refreshed at least every 15 days)"
        )
    cadences = read_cadences(directory)
    cadences[check_cohort_name(name)] = days
    return _write_cadences(directory, cadences)


def remove_cadence(directory: Path, name: str) -> None:
    """Forget cohort `name`'s cadence (the cohort was removed)."""
    cadences = read_cadences(directory)
    if cadences.pop(name, None) is not None:
        _write_cadences(directory, cadences)


def _write_cadences(directory: Path, cadences: dict[str, int]) -> Path:
    path = Path(directory) / CADENCE_FILE
    body = "".join(f"\n[{n}]\ncadence_days = {d}\n" for n, d in sorted(cadences.items()))
    path.write_text(_CADENCE_HEADER + body, encoding="utf-8")
    return path
