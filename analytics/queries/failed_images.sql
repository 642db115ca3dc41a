-- name: failed_images
-- Images that failed and why: every FAILED image, newest first, with the input error code, the reason
-- given to the uploader, and how many failed images share that code.
-- Same text on Athena and DuckDB (runs over the `results` view).
SELECT
  error_code,
  COUNT(*) OVER (PARTITION BY error_code) AS images_with_code,
  image_id,
  created_at,
  error_reason
FROM results
WHERE status = 'FAILED'
ORDER BY created_at DESC, image_id
