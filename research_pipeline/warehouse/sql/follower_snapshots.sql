-- Appended to with_previous.sql: followers, following and their change per user.
SELECT snapshot_date, cohort, username, follower_count, following_count,
       prev_date AS previous_snapshot_date,
       days AS days_since_previous,
       follower_count - prev_followers AS follower_delta,
       following_count - prev_following AS following_delta,
       (follower_count - prev_followers) / nullif(days, 0) AS follower_growth_per_day
FROM joined
