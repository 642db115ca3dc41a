-- name: results_flat
-- Every image of the newest export, one flat row each (all columns of the results view), oldest first:
-- the table to load into pandas, Polars or a spreadsheet. The source is named by source_key_pseudonym
-- (src_...) only; source_key (the upload key, often a file name) is filled only where the deployment keeps
-- keys (keepSourceKeys), and `npm run analytics -- --mapping OUT/source-mapping.json` adds source_file locally.
-- Same text on Athena and DuckDB (runs over the `results` view).
SELECT *
FROM results
ORDER BY created_at, image_id
