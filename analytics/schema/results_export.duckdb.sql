-- Source relation `results_export`, DuckDB dialect (the local export of `npm run export`).
-- Same logical relation as results_export.athena.sql: one column `item` holding the DynamoDB JSON of
-- one results-table item. The struct is declared rather than inferred so that attributes absent from
-- a small export (no FAILED item yet, say) still exist as NULL columns, as they do in Athena.
-- ${EXPORT_DATA_GLOB} is replaced by <export dir>/data/*.json.gz, ${SNAPSHOT} by its export id (the
-- `snapshot` column that Athena's table has as its partition; one export is read here).
CREATE OR REPLACE VIEW results_export AS
SELECT '${SNAPSHOT}' AS snapshot, "Item" AS item
FROM read_json(
  '${EXPORT_DATA_GLOB}',
  format = 'newline_delimited',
  compression = 'gzip',
  columns = {
    'Item': 'STRUCT(
      imageId STRUCT(S VARCHAR),
      status STRUCT(S VARCHAR),
      patientKey STRUCT(S VARCHAR),
      studyKey STRUCT(S VARCHAR),
      sortKey STRUCT(S VARCHAR),
      studyDate STRUCT(S VARCHAR),
      createdAt STRUCT(S VARCHAR),
      path STRUCT(S VARCHAR),
      errorCode STRUCT(S VARCHAR),
      errorReason STRUCT(S VARCHAR),
      opacityPctTotal STRUCT(N VARCHAR),
      opacityPctRight STRUCT(N VARCHAR),
      opacityPctLeft STRUCT(N VARCHAR),
      geographicExtent STRUCT(N VARCHAR),
      zoneScore STRUCT(N VARCHAR),
      grade STRUCT(S VARCHAR),
      riskIcu STRUCT(N VARCHAR),
      riskMortality STRUCT(N VARCHAR),
      modelVersion STRUCT(S VARCHAR),
      severityVersion STRUCT(S VARCHAR),
      source STRUCT(M STRUCT(keyPseudonym STRUCT(S VARCHAR), key STRUCT(S VARCHAR)))
    )'
  }
)
