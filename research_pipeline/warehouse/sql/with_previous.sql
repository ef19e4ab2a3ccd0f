-- Every ok row of each wanted partition (`keys`), with the same user's latest earlier ok row,
-- whichever cohort it was asked for and however many days back (panels are refreshed in
-- rotation: a member's previous answer is rarely yesterday's). Rows whose counts were removed
-- (an account gone, TikTok's terms) take no part. Follows answers.sql (`answers`: what can
-- be a previous answer, without reading the whole history).
cur AS (
    SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)
    WHERE u.status = 'ok' AND u.follower_count IS NOT NULL
),
prev AS (
    SELECT c.snapshot_date, c.cohort, c.username,
           max(p.snapshot_date) AS prev_date,
           arg_max(p.follower_count, p.snapshot_date) AS prev_followers,
           arg_max(p.following_count, p.snapshot_date) AS prev_following,
           arg_max(p.likes_count, p.snapshot_date) AS prev_likes,
           arg_max(p.video_count, p.snapshot_date) AS prev_videos
    FROM cur c JOIN answers p
      ON p.username = c.username AND p.snapshot_date < c.snapshot_date AND p.status = 'ok'
     AND p.follower_count IS NOT NULL
    GROUP BY ALL
),
joined AS (
    SELECT cur.*, prev.* EXCLUDE (snapshot_date, cohort, username),
           datediff('day', prev.prev_date, cur.snapshot_date) AS days
    FROM cur LEFT JOIN prev USING (snapshot_date, cohort, username)
)
