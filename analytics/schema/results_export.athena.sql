-- Source relation `results_export`, Athena dialect (Glue table over one DynamoDB export, DYNAMODB_JSON).
-- Same logical relation as results_export.duckdb.sql: one column `item`, the DynamoDB JSON of one
-- results-table item ({"Item": {...}} per line). Only the attributes the analytics use are declared;
-- the JSON SerDe ignores the others and matches names case-insensitively (Glue lower-cases them).
-- Replace ${EXPORT_DATA_S3_URI} with s3://<export bucket>/<prefix>/AWSDynamoDB/<exportId>/data/
-- (the scheduled export writes a new <exportId> each run: point the table, or a partition, at the newest).
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
    severityVersion: struct<s: string>
  >
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION '${EXPORT_DATA_S3_URI}'
