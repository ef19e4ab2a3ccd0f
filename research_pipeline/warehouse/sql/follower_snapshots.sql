-- Appended to with_previous.sql: followers, following and their change per user.
SELECT snapshot_date, cohort, username, follower_count, following_count, prev_date,
       days, follower_count - prev_followers, following_count - prev_following,
       (follower_count - prev_followers) / nullif(days, 0)
FROM joined
    
