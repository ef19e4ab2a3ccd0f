-- Per (date, cohort) of `keys`: users, ok, errors by code, medians and totals.
WITH raw AS (
    SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)
),
counts AS (
    SELECT snapshot_date, cohort, count(*) AS users,
           count(*) FILTER (WHERE status = 'ok') AS ok,
           count(*) FILTER (WHERE status <> 'ok') AS errors
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
f AS (
    SELECT snapshot_date, cohort, median(follower_count) AS median_followers,
           sum(follower_count) AS total_followers,
           median(follower_growth_per_day) AS median_growth
    FROM tiktok.follower_snapshots SEMI JOIN keys USING (snapshot_date, cohort)
    GROUP BY ALL
),
e AS (
    SELECT snapshot_date, cohort, sum(likes_count) AS total_likes,
           median(likes_per_video) AS median_likes_per_video
    FROM tiktok.engagement_snapshots SEMI JOIN keys USING (snapshot_date, cohort)
    GROUP BY ALL
)
SELECT snapshot_date, cohort, users, ok, errors, coalesce(errors_by_code, '{}'),
       median_followers, total_followers, total_likes, median_likes_per_video,
       median_growth
FROM counts
LEFT JOIN codes USING (snapshot_date, cohort)
LEFT JOIN f USING (snapshot_date, cohort)
LEFT JOIN e USING (snapshot_date, cohort)
    
