-- Every ok user of each wanted partition (`keys`), with their latest earlier ok row. Most users
-- were in their cohort's previous snapshot, found directly by date (DuckDB prunes the scan to
-- that date); only users missing there are looked for further back.
WITH k AS (
    SELECT k.snapshot_date, k.cohort,
           coalesce((SELECT max(s.snapshot_date) FROM tiktok.snapshots s
                     WHERE s.cohort = k.cohort AND s.snapshot_date < k.snapshot_date),
                    DATE '1970-01-01') AS prev
    FROM keys k
),
cur AS (
    SELECT u.*, k.prev FROM tiktok.user_info u JOIN k USING (snapshot_date, cohort)
    WHERE u.status = 'ok'
),
at_previous AS (
    SELECT c.snapshot_date, c.cohort, c.username, p.snapshot_date AS prev_date,
           p.follower_count AS prev_followers, p.following_count AS prev_following,
           p.likes_count AS prev_likes, p.video_count AS prev_videos
    FROM cur c JOIN tiktok.user_info p
      ON p.cohort = c.cohort AND p.username = c.username AND p.snapshot_date = c.prev
    WHERE p.status = 'ok' AND p.snapshot_date IN (SELECT prev FROM k)
),
missing AS (
    SELECT c.snapshot_date, c.cohort, c.username, c.prev FROM cur c
    ANTI JOIN at_previous USING (snapshot_date, cohort, username)
),
further_back AS (
    SELECT m.snapshot_date, m.cohort, m.username,
           max(p.snapshot_date) AS prev_date,
           arg_max(p.follower_count, p.snapshot_date) AS prev_followers,
           arg_max(p.following_count, p.snapshot_date) AS prev_following,
           arg_max(p.likes_count, p.snapshot_date) AS prev_likes,
           arg_max(p.video_count, p.snapshot_date) AS prev_videos
    FROM missing m JOIN tiktok.user_info p
      ON p.cohort = m.cohort AND p.username = m.username AND p.snapshot_date < m.prev
    WHERE p.status = 'ok'
    GROUP BY ALL
),
prev AS (SELECT * FROM at_previous UNION ALL BY NAME SELECT * FROM further_back),
joined AS (
    SELECT cur.*, prev.* EXCLUDE (snapshot_date, cohort, username),
           datediff('day', prev.prev_date, cur.snapshot_date) AS days
    FROM cur LEFT JOIN prev USING (snapshot_date, cohort, username)
)
