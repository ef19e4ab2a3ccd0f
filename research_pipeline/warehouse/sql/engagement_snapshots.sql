-- Appended to with_previous.sql: likes, videos, rates (NULL on a zero denominator), changes.
SELECT snapshot_date, cohort, username, likes_count, video_count,
       likes_count / nullif(video_count, 0), likes_count / nullif(follower_count, 0),
       prev_date, likes_count - prev_likes, video_count - prev_videos,
       (likes_count - prev_likes) / nullif(days, 0)
FROM joined
    
