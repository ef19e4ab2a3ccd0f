"""Data checks on the raw snapshot, run with every materialization of `tiktok/user_info`."""

from collections.abc import Sequence
from datetime import date

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from research_pipeline.warehouse import queries

USER_INFO_KEY = AssetKey(["tiktok", "user_info"])
DEFAULT_MAX_ERROR_SHARE = 0.25

USER_INFO_CHECKS = [
    AssetCheckSpec(
        "unique_users",
        asset=USER_INFO_KEY,
        description="One row per (snapshot_date, cohort, username). Blocking: the derived "
        "tables are not computed from a raw snapshot that fails it.",
        blocking=True,
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
    counts = queries.raw_check_counts(conn, {(d, c): names for d, c, names in partitions})
    share = counts.error_rows / counts.rows if counts.rows else 0.0
    missing = counts.missing
    return [
        AssetCheckResult(
            check_name="unique_users",
            asset_key=USER_INFO_KEY,
            passed=counts.duplicate_rows == 0,
            metadata={"duplicate_rows": counts.duplicate_rows},
        ),
        AssetCheckResult(
            check_name="counts_not_negative",
            asset_key=USER_INFO_KEY,
            passed=counts.rows_with_negative_counts == 0,
            metadata={"rows_with_negative_counts": counts.rows_with_negative_counts},
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
