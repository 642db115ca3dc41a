-- name: severe_share_per_day
-- Share of severe images per day: of the images scored on each day (the day the result was recorded;
-- study dates are shifted per patient and do not line up across patients), how many were graded severe
-- or worse. Severe = the grades 'severe' and 'critical' of
-- models/severity.json (>= 30% total opacity in v0.1); change the list if the grade labels change.
-- Same text on Athena and DuckDB (runs over the `results` view).
SELECT
  processed_day AS day,
  COUNT(*) AS scored_images,
  SUM(CASE WHEN grade IN ('severe', 'critical') THEN 1 ELSE 0 END) AS severe_images,
  ROUND(CAST(SUM(CASE WHEN grade IN ('severe', 'critical') THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*), 4) AS severe_share
FROM results
WHERE status = 'SCORED'
GROUP BY processed_day
ORDER BY processed_day
