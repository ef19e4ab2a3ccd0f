"""Query results as the tables the UI's previews and the CLI's summary show."""

from datetime import date

from research_pipeline.tables import Table

TABLE = Table(
    ["cohort", "members", "median_growth", "day"],
    [("a|b", 10, 1234567.5, date(2026, 1, 2)), ("long_name", 2000, None, None)],
)


def test_markdown_keeps_every_cell_in_its_column():
    lines = TABLE.markdown().splitlines()
    assert lines[0] == "| cohort | members | median_growth | day |"
    assert lines[2] == "| a\\|b | 10 | 1234567.5 | 2026-01-02 |"  # a pipe would split the cell
    assert lines[3] == "| long_name | 2000 |  |  |"  # NULL: empty
    assert all(line.count("|") - line.count("\\|") == 5 for line in lines)


def test_text_aligns_numbers_right_and_says_null():
    assert TABLE.text().splitlines() == [
        "cohort     members  median_growth  day",
        "a|b             10      1234567.5  2026-01-02",
        "long_name     2000           NULL  NULL",
    ]
