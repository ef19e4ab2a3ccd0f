-- Appended to with_previous.sql: likes, videos, rates (NULL on a zero denominator), changes.
SELECT snapshot_date, cohort, username, likes_count, video_count,
       likes_count / nullif(video_count, 0) AS likes_per_video,
       likes_count / nullif(follower_count, 0) AS likes_per_follower,
       prev_date AS previous_snapshot_date,
       likes_count - prev_likes AS likes_delta,
       video_count - prev_videos AS video_delta,
       (likes_count - prev_likes) / nullif(days, 0) AS likes_gained_per_day
FROM joined
