-- name: opacity_trend_per_patient
-- Opacity trend per patient: each scored image of every known (pseudonymised) patient in time order,
-- with its position in the series and the change in total opacity % since the patient's previous image.
-- taken_at is the patient's shifted study day (order and days between studies exact, not a calendar date).
-- Same text on Athena and DuckDB (runs over the `results` view).
SELECT
  patient_key,
  ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY taken_at, image_id) AS image_number,
  taken_at,
  image_id,
  opacity_pct_total,
  grade,
  opacity_pct_total - LAG(opacity_pct_total) OVER (PARTITION BY patient_key ORDER BY taken_at, image_id) AS change_pct_points
FROM results
WHERE status = 'SCORED' AND patient_key <> 'UNKNOWN'
ORDER BY patient_key, taken_at, image_id
