-- View `results`: one typed row per image, flattened from the DynamoDB JSON of `results_export`.
-- The same text runs on Athena (Trino) and DuckDB: both dereference struct fields with dots,
-- case-insensitively, and both read a missing attribute or a {"NULL": true} value as SQL NULL.
-- `study_date` is the patient's shifted study day (YYYY-MM-DD): every study of one patient is moved back by
-- the same secret number of days (src/core/date-shift.ts), so order and intervals within a patient are
-- exact, but it is not a calendar date and does not line up across patients. No real study date is stored.
-- `taken_at` orders a patient's images: the shifted study day when the image has one (DICOM with a
-- patient), else the time the pipeline recorded the result (as the table's sortKey does).
-- `processed_day` is the day the result was recorded: the calendar axis for counts across patients.
-- `source_key_pseudonym` is the keyed pseudonym (src_...) of the upload's key (often a file name): the
-- uploader matches it to a file with their own mapping (npm start writes OUT/source-mapping.json; locally
-- `npm run analytics -- --mapping` joins it as source_file). `source_key`, the upload key itself, is only
-- there for deployments that keep keys (keepSourceKeys / KEEP_SOURCE_KEYS=true), else NULL.
-- `snapshot` names the export: the relation may hold several (Athena: one partition per daily export),
-- and the view reads only the newest; rows without an item (manifest files under the same prefix) are dropped.
CREATE OR REPLACE VIEW results AS
SELECT
  item.imageId.S AS image_id,
  item.status.S AS status,
  item.patientKey.S AS patient_key,
  item.studyKey.S AS study_key,
  item.studyDate.S AS study_date,
  item.createdAt.S AS created_at,
  COALESCE(item.studyDate.S, item.createdAt.S) AS taken_at,
  SUBSTR(item.createdAt.S, 1, 10) AS processed_day,
  item.path.S AS processing_path,
  item.errorCode.S AS error_code,
  item.errorReason.S AS error_reason,
  CAST(item.opacityPctTotal.N AS DOUBLE) AS opacity_pct_total,
  CAST(item.opacityPctRight.N AS DOUBLE) AS opacity_pct_right,
  CAST(item.opacityPctLeft.N AS DOUBLE) AS opacity_pct_left,
  CAST(item.geographicExtent.N AS INTEGER) AS geographic_extent,
  CAST(item.zoneScore.N AS INTEGER) AS zone_score,
  item.grade.S AS grade,
  CAST(item.riskIcu.N AS DOUBLE) AS risk_icu,
  CAST(item.riskMortality.N AS DOUBLE) AS risk_mortality,
  item.modelVersion.S AS model_version,
  item.severityVersion.S AS severity_version,
  item.source.M.keyPseudonym.S AS source_key_pseudonym,
  item.source.M.key.S AS source_key,
  snapshot
FROM results_export
WHERE item.imageId.S IS NOT NULL
  AND snapshot = (SELECT MAX(snapshot) FROM results_export WHERE item.imageId.S IS NOT NULL)
