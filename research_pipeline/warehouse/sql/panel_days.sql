-- Every member-day of the cohorts in `chosen` (cohort, start), from the cohort's first recorded
-- day (or `start`, when not NULL) to its last, with the status of warehouse.panel_days (what happened that day, in the order of the CASE):
-- the answer stored for it, else the account forgotten since, else the plan's decision and how
-- the asking of the planned ended; a day no run recorded is not_run for the members due then.
WITH recorded AS (            -- the days a run recorded each cohort's membership
    SELECT DISTINCT cohort, snapshot_date AS recorded FROM tiktok.cohort_members
    WHERE cohort IN (SELECT cohort FROM chosen)
),
days AS (
    SELECT r.cohort,
           unnest(generate_series(greatest(min(r.recorded), any_value(c.start)),
                                  max(r.recorded), INTERVAL 1 DAY))::DATE AS snapshot_date
    FROM recorded r JOIN chosen c USING (cohort) GROUP BY r.cohort
),
as_of AS (                    -- each day's membership: the one recorded last on or before it
    SELECT d.cohort, d.snapshot_date, r.recorded
    FROM days d ASOF JOIN recorded r ON r.cohort = d.cohort AND r.recorded <= d.snapshot_date
),
panel AS (
    SELECT a.snapshot_date, a.cohort, m.username, m.cadence_days,
           a.recorded = a.snapshot_date AS ran
    FROM as_of a JOIN tiktok.cohort_members m
      ON m.cohort = a.cohort AND m.snapshot_date = a.recorded
),
finals AS (                   -- each member's final answers, whichever cohort asked
    SELECT DISTINCT username, snapshot_date FROM tiktok.user_info
    WHERE is_final AND username IN (SELECT username FROM panel)
),
due AS (                      -- on a day no run recorded: due when no final answer in a cadence
    SELECT p.snapshot_date, p.cohort, p.username,
           f.snapshot_date IS NULL
           OR f.snapshot_date <= p.snapshot_date - p.cadence_days AS due
    FROM panel p
    ASOF LEFT JOIN finals f
      ON f.username = p.username AND f.snapshot_date <= p.snapshot_date
    WHERE NOT p.ran
)
SELECT p.snapshot_date, p.cohort, p.username,
       CASE
           WHEN u.status = 'ok' THEN 'observed'
           WHEN u.username IS NOT NULL AND u.error_kind IN (/*GONE_KINDS*/) THEN u.error_kind
           WHEN u.username IS NOT NULL AND u.error_kind = 'rate_limited' THEN 'deferred'
           WHEN u.username IS NOT NULL AND u.error_kind = 'server_error' THEN 'server_error'
           WHEN u.username IS NOT NULL THEN 'other_error'
           WHEN t.username IS NOT NULL AND p.snapshot_date > t.since THEN 'forgotten'
           WHEN NOT p.ran THEN CASE WHEN due.due THEN 'not_run' ELSE 'not_due' END
           WHEN d.decision IS NULL THEN 'not_recorded'
           WHEN d.decision IN ('deferred', 'not_due') THEN d.decision
           WHEN d.ended_because = 'quota' THEN 'deferred'
           WHEN d.ended_because = 'outage' THEN 'outage'
           WHEN d.ended_because = 'credentials' THEN 'no_access'
           ELSE 'interrupted'
       END AS status,
       d.plan_rank, d.day_budget
FROM panel p
LEFT JOIN (SELECT * FROM tiktok.user_info
           WHERE snapshot_date >= (SELECT min(snapshot_date) FROM days)) u
  USING (snapshot_date, cohort, username)
LEFT JOIN tiktok.tombstones t USING (cohort, username)
LEFT JOIN (SELECT * FROM tiktok.plan_decisions
           WHERE snapshot_date >= (SELECT min(snapshot_date) FROM days)) d
  USING (snapshot_date, cohort, username)
LEFT JOIN due USING (snapshot_date, cohort, username)
