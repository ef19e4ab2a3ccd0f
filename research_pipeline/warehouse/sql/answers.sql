-- The final answers that can be some user's latest before (or on) a date >= $since: the kept
-- last answers dated before $since (tiktok.last_answers, when $use_state) and every final row
-- from $since on (a few days: DuckDB skips older row groups by their date range). With
-- $use_state false and $since at the beginning of time: the whole history.
WITH answers AS (
    SELECT username, snapshot_date, status, error_kind, follower_count, following_count,
           likes_count, video_count
    FROM tiktok.last_answers WHERE $use_state
    UNION ALL
    SELECT username, snapshot_date, status, error_kind, follower_count, following_count,
           likes_count, video_count
    FROM tiktok.user_info WHERE is_final AND snapshot_date >= $since
),
