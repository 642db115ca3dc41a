-- Source relation `results_export`, Athena dialect (Glue table over the daily DynamoDB exports, DYNAMODB_JSON).
-- Same logical relation as results_export.duckdb.sql: one column `item`, the DynamoDB JSON of one
-- results-table item ({"Item": {...}} per line). Only the attributes the analytics use are declared;
-- the JSON SerDe ignores the others and matches names case-insensitively (Glue lower-cases them).
-- The CDK stack (cdk/lib/analytics.ts) creates this table itself; this text is for a hand-made set-up and
-- declares the same: one partition `snapshot` per daily export (partition projection over the scheduled
-- times), the `results` view reading the newest. Replace ${EXPORT_ROOT_S3_URI} with
-- s3://<analytics bucket>/exports/results/ (each export lands in <snapshot>/AWSDynamoDB/<exportId>/).
CREATE EXTERNAL TABLE IF NOT EXISTS results_export (
  item struct<
    imageId: struct<s: string>,
    status: struct<s: string>,
    patientKey: struct<s: string>,
    studyKey: struct<s: string>,
    sortKey: struct<s: string>,
    studyDate: struct<s: string>,
    createdAt: struct<s: string>,
    path: struct<s: string>,
    errorCode: struct<s: string>,
    errorReason: struct<s: string>,
    opacityPctTotal: struct<n: string>,
    opacityPctRight: struct<n: string>,
    opacityPctLeft: struct<n: string>,
    geographicExtent: struct<n: string>,
    zoneScore: struct<n: string>,
    grade: struct<s: string>,
    riskIcu: struct<n: string>,
    riskMortality: struct<n: string>,
    modelVersion: struct<s: string>,
    severityVersion: struct<s: string>,
    source: struct<m: struct<keyPseudonym: struct<s: string>, key: struct<s: string>>>
  >
)
PARTITIONED BY (snapshot string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'case.insensitive' = 'true')
LOCATION '${EXPORT_ROOT_S3_URI}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.snapshot.type' = 'date',
  'projection.snapshot.format' = 'yyyy-MM-dd''T''HH:mm:ss''Z''',
  'projection.snapshot.range' = '2025-01-01T02:00:00Z,NOW',
  'projection.snapshot.interval' = '1',
  'projection.snapshot.interval.unit' = 'DAYS',
  'storage.location.template' = '${EXPORT_ROOT_S3_URI}${snapshot}/AWSDynamoDB/'
)
