/**
 * Athena named queries over the daily DynamoDB export of the results table (DynamoDB JSON, one
 * `{"Item": {...}}` object per line). Each query reads only the newest export snapshot.
 * Numbers arrive as DynamoDB `N` strings and are cast to double.
 */
export const EXPORT_TABLE = 'results_export';

/** The newest snapshot: exports older than the retention window expire from S3, which bounds this scan. */
const LATEST = `latest AS (SELECT max(snapshot) AS snapshot FROM ${EXPORT_TABLE} WHERE item.imageId.s IS NOT NULL)`;
const ROWS = `rows AS (
  SELECT e.item FROM ${EXPORT_TABLE} e JOIN latest l ON e.snapshot = l.snapshot
  WHERE e.item.imageId.s IS NOT NULL
)`;

export interface NamedQuery {
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}

export const NAMED_QUERIES: NamedQuery[] = [
  {
    name: 'opacity-trend-per-patient',
    description: 'Opacity % of every scored image of each patient in study order (shifted study days), with the change since the previous image',
    sql: `-- Opacity trend per patient (newest export). Add: AND patient_key = '<pseudonym>' to follow one patient.
WITH ${LATEST},
${ROWS},
scored AS (
  SELECT item.patientKey.s AS patient_key,
         item.sortKey.s AS sort_key,
         -- The patient's shifted study day: order and days between studies exact, not a calendar date.
         coalesce(item.studyDate.s, item.createdAt.s) AS study_date,
         item.imageId.s AS image_id,
         item.studyKey.s AS study_key,
         CAST(item.opacityPctTotal.n AS double) AS opacity_pct_total,
         CAST(item.opacityPctRight.n AS double) AS opacity_pct_right,
         CAST(item.opacityPctLeft.n AS double) AS opacity_pct_left,
         CAST(item.geographicExtent.n AS double) AS geographic_extent,
         item.grade.s AS grade
  FROM rows
  WHERE item.status.s = 'SCORED'
)
SELECT patient_key, study_date, image_id, study_key, opacity_pct_total, opacity_pct_right, opacity_pct_left,
       geographic_extent, grade,
       opacity_pct_total - lag(opacity_pct_total) OVER (PARTITION BY patient_key ORDER BY sort_key) AS change_pct_points,
       row_number() OVER (PARTITION BY patient_key ORDER BY sort_key) AS image_number
FROM scored
ORDER BY patient_key, sort_key;`,
  },
  {
    name: 'severe-share-per-day',
    description: 'Per processing day: scored images, and the number and share graded severe or critical',
    sql: `-- Share of severe images per day (newest export); grades from models/severity.json (severe: >= 30%, critical: >= 50%).
-- Days are processing days: study dates are shifted per patient and do not line up across patients.
WITH ${LATEST},
${ROWS}
SELECT substr(item.createdAt.s, 1, 10) AS day,
       count(*) AS scored_images,
       count_if(item.grade.s IN ('severe', 'critical')) AS severe_images,
       round(CAST(count_if(item.grade.s IN ('severe', 'critical')) AS double) / count(*), 4) AS severe_share,
       round(avg(CAST(item.opacityPctTotal.n AS double)), 2) AS mean_opacity_pct
FROM rows
WHERE item.status.s = 'SCORED'
GROUP BY 1
ORDER BY 1;`,
  },
  {
    name: 'failed-images-and-reasons',
    description: 'Images that failed, grouped by error code and reason, with counts and an example',
    sql: `-- Failed images and why (newest export).
WITH ${LATEST},
${ROWS}
SELECT item.errorCode.s AS error_code,
       item.errorReason.s AS error_reason,
       count(*) AS images,
       min(item.createdAt.s) AS first_seen,
       max(item.createdAt.s) AS last_seen,
       arbitrary(item.imageId.s) AS example_image_id
FROM rows
WHERE item.status.s = 'FAILED'
GROUP BY 1, 2
ORDER BY images DESC, error_code;`,
  },
];
