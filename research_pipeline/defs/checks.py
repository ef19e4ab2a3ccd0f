"""Data checks on the raw snapshot, run with every materialization of `tiktok/user_info`."""

from collections.abc import Sequence
from datetime import date

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

USER_INFO_KEY = AssetKey(["tiktok", "user_info"])
DEFAULT_MAX_ERROR_SHARE = 0.25

USER_INFO_CHECKS = [
    AssetCheckSpec(
        "unique_users",
        asset=USER_INFO_KEY,
        description="One row per (snapshot_date, cohort, username).",
    ),
    AssetCheckSpec(
        "counts_not_negative",
        asset=USER_INFO_KEY,
        description="Follower, following, like and video counts are >= 0.",
    ),
    AssetCheckSpec(
        "every_member_present",
        asset=USER_INFO_KEY,
        description="Every username of the cohort file has a row: data or error.",
    ),
    AssetCheckSpec(
        "error_share_below_threshold",
        asset=USER_INFO_KEY,
        description="Warns when too many users answer with an error.",
    ),
]


def check_user_info(
    conn,
    partitions: Sequence[tuple[date, str, Sequence[str]]],
    max_error_share: float = DEFAULT_MAX_ERROR_SHARE,
) -> list[AssetCheckResult]:
    """Evaluate the four checks over the given (date, cohort, members) partitions."""
    keys = pd.DataFrame(  # noqa: F841 - read by SQL
        [(d, c) for d, c, _ in partitions], columns=["snapshot_date", "cohort"]
    )
    members = pd.DataFrame(  # noqa: F841 - read by SQL
        [(d, c, u) for d, c, names in partitions for u in names],
        columns=["snapshot_date", "cohort", "username"],
    )
    rows = "SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)"
    duplicates, negatives, total, errors = conn.execute(f"""
        SELECT count(*) - count(DISTINCT (snapshot_date, cohort, username)),
               count(*) FILTER (WHERE follower_count < 0 OR following_count < 0
                                OR likes_count < 0 OR video_count < 0),
               count(*),
               count(*) FILTER (WHERE status <> 'ok')
        FROM ({rows})
    """).fetchone()  # noqa: S608 - fixed SQL, no values interpolated
    missing = conn.execute(f"""
        SELECT m.cohort, m.username FROM members m
        ANTI JOIN ({rows}) r USING (snapshot_date, cohort, username)
        ORDER BY 1, 2
    """).fetchall()  # noqa: S608 - fixed SQL, no values interpolated
    share = errors / total if total else 0.0
    return [
        AssetCheckResult(
            check_name="unique_users",
            asset_key=USER_INFO_KEY,
            passed=duplicates == 0,
            metadata={"duplicate_rows": duplicates},
        ),
        AssetCheckResult(
            check_name="counts_not_negative",
            asset_key=USER_INFO_KEY,
            passed=negatives == 0,
            metadata={"rows_with_negative_counts": negatives},
        ),
        AssetCheckResult(
            check_name="every_member_present",
            asset_key=USER_INFO_KEY,
            passed=not missing,
            metadata={
                "missing_users": len(missing),
                "first_missing": ", ".join(f"{c}/{u}" for c, u in missing[:10]),
            },
        ),
        AssetCheckResult(
            check_name="error_share_below_threshold",
            asset_key=USER_INFO_KEY,
            passed=share <= max_error_share,
            severity=AssetCheckSeverity.WARN,
            metadata={"error_share": round(share, 4), "threshold": max_error_share},
        ),
    ]
