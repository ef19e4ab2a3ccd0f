-- Per (date, cohort) of `keys`: the day's rows (users, ok, errors by code and kind), coverage of
-- the cohort's members, and aggregates over ALL members from each one's latest answer on or
-- before the date (not over whoever happened to be fetched that day, so totals do not jump when
-- coverage does). A member whose latest answer says the account is gone adds no counts.
-- Follows answers.sql (`answers`: each member's latest answer without reading the history).
raw AS (
    SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)
),
recorded AS (
    SELECT m.* FROM tiktok.cohort_members m SEMI JOIN keys USING (snapshot_date, cohort)
),
-- Partitions written before membership was recorded (schema < 3): the users with a row.
members AS (
    SELECT snapshot_date, cohort, username, cadence_days FROM recorded
    UNION ALL
    SELECT DISTINCT snapshot_date, cohort, username, 1 FROM raw r
    WHERE NOT EXISTS (SELECT 1 FROM recorded x
                      WHERE x.snapshot_date = r.snapshot_date AND x.cohort = r.cohort)
),
latest AS (
    SELECT m.snapshot_date, m.cohort, m.username, m.cadence_days,
           max(u.snapshot_date) AS last_day,
           arg_max_null(u.status, u.snapshot_date) AS last_status,
           arg_max_null(u.error_kind, u.snapshot_date) AS last_kind,
           arg_max_null(u.follower_count, u.snapshot_date) AS followers,
           arg_max_null(u.likes_count, u.snapshot_date) AS likes,
           arg_max_null(u.video_count, u.snapshot_date) AS videos
    FROM members m LEFT JOIN answers u
      ON u.username = m.username AND u.snapshot_date <= m.snapshot_date
    GROUP BY ALL
),
aged AS (
    SELECT *, datediff('day', last_day, snapshot_date) AS age,
           -- the planner's rule: cadence at most 15 days (TikTok's terms)
           least(cadence_days, 15) AS allowed,
           coalesce(last_kind IN (/*GONE_KINDS*/), false) AS gone
    FROM latest
),
-- One meaning of each word (the data dictionary states them): fresh, a live member whose latest
-- answer is ok and within its cadence; gone, a member whose latest answer says the account is
-- no longer available (counted apart, never fresh); stale, a live member answered before but not
-- fresh; never_fetched, no answer yet. fresh + stale + gone + never_fetched = members.
coverage AS (
    SELECT snapshot_date, cohort, count(*) AS members,
           count(*) FILTER (WHERE NOT gone AND last_status = 'ok' AND age <= allowed) AS fresh,
           count(*) FILTER (WHERE NOT gone AND last_day IS NOT NULL
                            AND NOT (last_status = 'ok' AND age <= allowed)) AS stale,
           count(*) FILTER (WHERE gone) AS gone,
           count(*) FILTER (WHERE last_day IS NULL) AS never_fetched,
           max(age) FILTER (WHERE NOT gone) AS max_age_days,
           median(followers) FILTER (WHERE last_status = 'ok') AS median_followers,
           sum(followers) FILTER (WHERE last_status = 'ok') AS total_followers,
           sum(likes) FILTER (WHERE last_status = 'ok') AS total_likes,
           median(likes / nullif(videos, 0)) FILTER (WHERE last_status = 'ok')
               AS median_likes_per_video
    FROM aged GROUP BY ALL
),
counts AS (
    SELECT snapshot_date, cohort, count(*) AS users,
           count(*) FILTER (WHERE status = 'ok') AS ok,
           count(*) FILTER (WHERE status <> 'ok') AS errors,
           count(*) FILTER (WHERE is_final) AS fetched
    FROM raw GROUP BY ALL
),
codes AS (
    SELECT snapshot_date, cohort,
           to_json(map_from_entries(list({'k': status, 'v': n} ORDER BY status)))::VARCHAR
               AS errors_by_code
    FROM (SELECT snapshot_date, cohort, status, count(*) AS n FROM raw
          WHERE status <> 'ok' GROUP BY ALL)
    GROUP BY ALL
),
kinds AS (
    SELECT snapshot_date, cohort,
           to_json(map_from_entries(list({'k': kind, 'v': n} ORDER BY kind)))::VARCHAR
               AS errors_by_kind
    FROM (SELECT snapshot_date, cohort, coalesce(error_kind, 'other') AS kind, count(*) AS n
          FROM raw WHERE status <> 'ok' GROUP BY ALL)
    GROUP BY ALL
),
statuses AS (                 -- the day's member-days by status (warehouse.panel_days)
    SELECT snapshot_date, cohort,
           to_json(map_from_entries(list({'k': status, 'v': n} ORDER BY status)))::VARCHAR
               AS members_by_status
    FROM (SELECT snapshot_date, cohort, status, count(*) AS n FROM tiktok.panel_days
          SEMI JOIN keys USING (snapshot_date, cohort) GROUP BY ALL)
    GROUP BY ALL
),
growth AS (
    SELECT snapshot_date, cohort, median(follower_growth_per_day) AS median_growth
    FROM tiktok.follower_snapshots SEMI JOIN keys USING (snapshot_date, cohort)
    GROUP BY ALL
)
SELECT k.snapshot_date, k.cohort,
       coalesce(counts.users, 0) AS users, coalesce(counts.ok, 0) AS ok,
       coalesce(counts.errors, 0) AS errors,
       coalesce(codes.errors_by_code, '{}') AS errors_by_code,
       coverage.median_followers, coverage.total_followers, coverage.total_likes,
       coverage.median_likes_per_video,
       growth.median_growth AS median_follower_growth_per_day,
       coalesce(coverage.members, 0) AS members, coalesce(counts.fetched, 0) AS fetched,
       coalesce(coverage.fresh, 0) AS fresh, coalesce(coverage.stale, 0) AS stale,
       coalesce(coverage.gone, 0) AS gone,
       coalesce(coverage.never_fetched, 0) AS never_fetched, coverage.max_age_days,
       coalesce(kinds.errors_by_kind, '{}') AS errors_by_kind,
       coalesce(statuses.members_by_status, '{}') AS members_by_status
FROM keys k
LEFT JOIN counts USING (snapshot_date, cohort)
LEFT JOIN codes USING (snapshot_date, cohort)
LEFT JOIN kinds USING (snapshot_date, cohort)
LEFT JOIN coverage USING (snapshot_date, cohort)
LEFT JOIN growth USING (snapshot_date, cohort)
LEFT JOIN statuses USING (snapshot_date, cohort)
WHERE coverage.members IS NOT NULL OR counts.users IS NOT NULL
