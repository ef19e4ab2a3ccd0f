"""What every column of a citable dataset means, and in which unit: the data dictionary written
beside each export (a test checks every exported column is described here)."""

from research_pipeline.member_days import STATUSES

COMMON = {
    "snapshot_date": (
        "The API's UTC day of the answer (its Date header), not this machine's",
        "date",
    ),
    "cohort": ("The cohort (a file of usernames) the row belongs to", ""),
    "username": ("The TikTok username asked for (lower case, without '@')", ""),
}

COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "user_info": {
        "fetched_at": ("When this pipeline received the answer", "UTC timestamp"),
        "served_at": ("When the API answered, by its own clock (Date header)", "UTC timestamp"),
        "status": ("'ok', or the API's error code (e.g. invalid_params) or a transport status", ""),
        "error_kind": (
            "not_found, refused, private, banned, rate_limited, server_error or other; "
            "empty when ok",
            "",
        ),
        "error_message": ("The API's error message, verbatim", ""),
        "log_id": ("The API's log_id of the answer (for TikTok support)", ""),
        "display_name": ("Profile display name", ""),
        "bio_description": ("Profile bio text", ""),
        "avatar_url": ("Profile picture URL", "URL"),
        "bio_url": ("Link in the profile bio", "URL"),
        "is_verified": ("Verified badge", "boolean"),
        "follower_count": ("Followers", "accounts"),
        "following_count": ("Accounts followed", "accounts"),
        "likes_count": ("Likes received over all the account's videos", "likes"),
        "video_count": ("Public videos", "videos"),
        "extra_fields": ("Fields the API returned beyond those requested", "JSON object"),
        "is_final": (
            "False when retries ran out on a transient error (asked again later)",
            "boolean",
        ),
        "source": ("Where the answer came from: the API's host, or 'emulator'", ""),
        "forgotten_at": (
            "When the values were removed: the account was no longer available (TikTok's terms)",
            "UTC timestamp",
        ),
    },
    "follower_snapshots": {
        "follower_count": ("Followers", "accounts"),
        "following_count": ("Accounts followed", "accounts"),
        "previous_snapshot_date": ("Day of the same user's previous ok answer, any cohort", "date"),
        "days_since_previous": ("Days between the two answers", "days"),
        "follower_delta": ("Change in followers since the previous answer", "accounts"),
        "following_delta": ("Change in accounts followed since the previous answer", "accounts"),
        "follower_growth_per_day": ("follower_delta / days_since_previous", "accounts per day"),
    },
    "engagement_snapshots": {
        "likes_count": ("Likes received over all videos", "likes"),
        "video_count": ("Public videos", "videos"),
        "likes_per_video": ("likes_count / video_count (empty when 0 videos)", "likes per video"),
        "likes_per_follower": (
            "likes_count / follower_count (empty when 0 followers)",
            "likes per follower",
        ),
        "previous_snapshot_date": ("Day of the same user's previous ok answer, any cohort", "date"),
        "likes_delta": ("Change in likes since the previous answer", "likes"),
        "video_delta": ("Change in videos since the previous answer", "videos"),
        "likes_gained_per_day": ("likes_delta / days between the answers", "likes per day"),
    },
    "cohort_summary": {
        "users": ("Rows of the day: members asked that day", "accounts"),
        "ok": ("Rows of the day with data", "accounts"),
        "errors": ("Rows of the day with an error", "accounts"),
        "errors_by_code": ("Rows of the day per API error code", "JSON object"),
        "errors_by_kind": ("Rows of the day per error kind", "JSON object"),
        "members_by_status": (
            "The day's members by status of panel_days (observed, not_due, deferred, ...)",
            "JSON object",
        ),
        "median_followers": (
            "Median followers over all members' latest answers (ok) on or before the day",
            "accounts",
        ),
        "total_followers": ("Sum of followers over all members' latest answers (ok)", "accounts"),
        "total_likes": ("Sum of likes over all members' latest answers (ok)", "likes"),
        "median_likes_per_video": (
            "Median likes per video over all members' latest answers (ok)",
            "likes per video",
        ),
        "median_follower_growth_per_day": (
            "Median follower growth of the members asked that day",
            "accounts per day",
        ),
        "members": ("Members of the cohort that day", "accounts"),
        "fetched": ("Members answered that day (final answers)", "accounts"),
        "fresh": (
            "Live members whose latest answer is ok and no older than the cohort's cadence "
            "(at most 15 days); accounts no longer available are never fresh",
            "accounts",
        ),
        "stale": ("Live members answered before, not fresh", "accounts"),
        "gone": (
            "Members whose latest answer says the account is no longer available (not found, "
            "refused); fresh + stale + gone + never_fetched = members",
            "accounts",
        ),
        "never_fetched": ("Members never answered yet", "accounts"),
        "max_age_days": ("Age of the oldest latest answer of a live member", "days"),
    },
    "cohort_members": {
        "cadence_days": ("The cohort's refresh cadence that day", "days"),
    },
    "plan_decisions": {
        "decision": (
            "The day's plan for the member: planned (asked), deferred (due, past the budget's "
            "cut) or not_due (its cadence did not call for it, or it was answered that day)",
            "",
        ),
        "plan_rank": ("Its place in the day's order of due members (0: asked first)", "rank"),
        "day_budget": ("Requests the plan could still spend that day (empty: no cap)", "requests"),
        "ended_because": (
            "How the asking of the planned ended: done, quota, outage, credentials, "
            "interrupted or deadline (empty: the run never said, e.g. killed)",
            "",
        ),
        "decided_at": ("When the plan was made", "UTC timestamp"),
    },
    "panel_days": {
        "status": (
            "Why the member-day has a value or not: "
            + "; ".join(f"{status}: {meaning}" for status, (_, meaning) in STATUSES.items()),
            "",
        ),
        "plan_rank": ("deferred or planned: its place in the day's order of due members", "rank"),
        "day_budget": ("Requests the day's plan could spend (empty: no cap)", "requests"),
    },
    "tombstones": {
        "since": ("First answer of the account's current absence", "date"),
        "kind": (
            "not_found, refused, private or banned: the account is gone; expired: a user "
            "removed from every cohort whose data passed the allowed age unrefreshed",
            "",
        ),
        "forgotten_at": ("When its data was removed", "UTC timestamp"),
    },
    "api_requests": {
        "cohort": (
            "The cohort the request was made for. A user in several cohorts is asked once a "
            "day: its request is listed in each cohort's dataset whose row it paid for, under "
            "the cohort that asked",
            "",
        ),
        "requested_at": ("When the request was sent", "UTC timestamp"),
        "http_status": ("HTTP status of the answer (empty: no answer)", ""),
        "status": (
            "'ok', the API's error code, a transport status, or 'unrecorded': sent by a run "
            "killed before it stored the answer (TikTok counted it; its cohort is empty)",
            "",
        ),
        "error_kind": ("Kind of failure, as in user_info", ""),
        "log_id": ("The API's log_id", ""),
        "source": ("The API's host, or 'emulator'", ""),
        "message": (
            "The API's message, or the raw text of an unreadable answer (secrets removed)",
            "",
        ),
    },
}


def describe(table: str, column: str) -> tuple[str, str] | None:
    return COLUMNS.get(table, {}).get(column) or COMMON.get(column)
