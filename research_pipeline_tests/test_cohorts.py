"""Cohort files: every bad line reported with its number, valid users kept once each."""

import pytest

from research_pipeline.cohorts import CohortError, check_cohort_name, cohort_files, read_cohort


def test_messy_text_file_keeps_valid_users_and_reports_each_bad_line(tmp_path):
    path = tmp_path / "messy.txt"
    lines = [
        b"\xef\xbb\xbf@Alice\r\n",  # 1: BOM, CRLF, '@' and case
        b"\r\n",  # 2: blank
        b"# a comment\r\n",  # 3
        b"bob  # trailing comment\n",  # 4
        b"alice\n",  # 5: duplicate of line 1
        b"x" * 25 + b"\n",  # 6: too long
        b"bad name!\n",  # 7: forbidden characters
        b"caf\xe9\n",  # 8: not UTF-8
        b"carol.d\n",  # 9
    ]
    path.write_bytes(b"".join(lines))
    cohort = read_cohort(path)
    assert cohort.name == "messy"
    assert cohort.usernames == ["alice", "bob", "carol.d"]
    assert cohort.duplicate_count == 1
    assert [(p.line, p.reason.split(":")[0]) for p in cohort.problems] == [
        (6, "invalid TikTok username 'xxxxxxxxxxxxxxxxxxxxxxxxx'"),
        (7, "invalid TikTok username 'bad name!'"),
        (8, "not valid UTF-8 text"),
    ]
    report = cohort.report()
    assert f"{path}:6:" in report and "25 characters" in report and "3 lines left out" in report


def test_csv_cohort_reads_the_username_column(tmp_path):
    path = tmp_path / "artists.csv"
    path.write_text("note,Username\nfirst,@One_User\nsecond,\nthird,two.user\n")
    cohort = read_cohort(path)
    assert cohort.usernames == ["one_user", "two.user"]
    assert [p.line for p in cohort.problems] == [3]


def test_csv_without_username_column_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("handle\nalice\n")
    with pytest.raises(CohortError, match="bad.csv:1: a CSV cohort needs a 'username' column"):
        read_cohort(path)


@pytest.mark.e2e
def test_a_million_lines_are_streamed(tmp_path):
    path = tmp_path / "big.txt"
    with path.open("w") as handle:
        for i in range(1_000_000):
            handle.write(f"user_{i % 400_000}\n")
    cohort = read_cohort(path)
    assert len(cohort.usernames) == 400_000 and cohort.duplicate_count == 600_000


@pytest.mark.parametrize(
    "name", ["x'; DROP TABLE tiktok.user_info; --", "Upper", "-dash", "", "a" * 65, "a|b", "../x"]
)
def test_unsafe_cohort_names_are_refused(name):
    with pytest.raises(CohortError, match="invalid cohort name"):
        check_cohort_name(name)


def test_cohort_folder_lists_txt_and_csv_files(tmp_path):
    (tmp_path / "one.txt").write_text("alice\n")
    (tmp_path / "two.csv").write_text("username\nbob\n")
    (tmp_path / "notes.md").write_text("not a cohort\n")
    (tmp_path / "Bad Name.txt").write_text("carol\n")
    assert sorted(cohort_files(tmp_path)) == ["one", "two"]
    assert cohort_files(tmp_path / "missing") == {}


def test_a_huge_bad_line_is_never_echoed_whole(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("good_user\n" + "x" * 1_000_000 + "\n")
    cohort = read_cohort(path)
    assert cohort.usernames == ["good_user"] and cohort.problem_count == 1
    assert len(cohort.report()) < 500  # the report, the event log and the compute log stay small


def test_cohorts_add_refuses_a_link_that_points_outside_the_folder(tmp_path, monkeypatch, capsys):
    from research_pipeline.cli import main

    folder, outside = tmp_path / "cohorts", tmp_path / "elsewhere.txt"
    folder.mkdir()
    (folder / "lab.txt").symlink_to(outside)  # dangling: would write outside the folder
    source = tmp_path / "list.txt"
    source.write_text("alice\n")
    monkeypatch.setenv("RESEARCH_PIPELINE_COHORTS_DIR", str(folder))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["cohorts", "add", "lab", str(source)]) == 2
    assert "a link pointing outside" in capsys.readouterr().err
    assert not outside.exists()


def test_a_cohort_past_a_million_members_is_refused_with_its_line(tmp_path, monkeypatch):
    from research_pipeline import cohorts

    monkeypatch.setattr(cohorts, "MAX_MEMBERS", 1000)  # the same rule, a smaller file
    path = tmp_path / "huge.txt"
    path.write_text("".join(f"user_{i}\n" for i in range(1001)))
    with pytest.raises(CohortError, match=r"huge.txt:1001: more than 1,000 members"):
        cohorts.read_cohort(path)


def test_a_text_field_longer_than_any_profile_is_that_users_invalid_answer():
    from research_pipeline.tiktok.validation import problems_in

    found = problems_in({"display_name": "x" * 5_000_000, "follower_count": 1}, ["display_name"])
    assert found == ["display_name is 5,000,000 characters long (at most 10,000)"]


@pytest.mark.parametrize(
    ("written", "character"),
    [
        ("\u212aate", "U+212A KELVIN SIGN"),  # str.lower() makes it 'kate': another account
        ("\uff4bate", "U+FF4B FULLWIDTH LATIN SMALL LETTER K"),
        ("ka\u200bte", "U+200B ZERO WIDTH SPACE"),
        ("ka\u202ete", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ],
)
def test_a_lookalike_of_a_username_is_refused_as_written_never_folded(tmp_path, written, character):
    path = tmp_path / "panel.txt"
    path.write_text(f"kate_real\n{written}\n", encoding="utf-8")
    cohort = read_cohort(path)
    assert cohort.usernames == ["kate_real"]  # never 'kate', another person's account
    [problem] = cohort.problems
    assert problem.line == 2 and character in problem.reason
    assert f"{path}:2:" in cohort.report()


def test_a_cadence_file_that_does_not_parse_is_set_aside_never_a_lost_day(tmp_path, caplog):
    from research_pipeline.panels import cohort_specs

    (tmp_path / "c1.txt").write_text("alice\nbob\n")
    (tmp_path / "cohorts.toml").write_text("[c1\ncadence_days = 7\n")  # a hand edit gone wrong
    [spec] = cohort_specs(tmp_path)  # before: CohortError, the day's run failed
    assert spec.cadence_days == 1 and spec.members == ["alice", "bob"]
    assert (tmp_path / "cohorts.toml.rejected").exists()
    assert "cohorts.toml.rejected" in caplog.text
    [again] = cohort_specs(tmp_path)  # said once: the file is aside now
    assert again.cadence_days == 1 and caplog.text.count("moved aside") == 1
