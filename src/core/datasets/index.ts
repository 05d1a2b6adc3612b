// Public surface of the datasets module.
export { createDataset, dropDataset } from './lifecycle.js'
export { openDatasetReader, openDatasetWriter, type DatasetOptions } from './writer.js'
export { checkSelect, type CheckedSelect } from './select-check.js'
export { DatasetError, type DatasetErrorCode } from './errors.js'
export { assertTableName, newDatasetId, pgSchemaName, isReservedTableName } from './identifiers.js'
export { validateTableSpec } from './spec.js'
export type * from './types.js'
export { createBigQueryHome, probeBigQueryHome, useBigQueryHome, bigQueryHomeOf, type BigQueryHome } from './bigquery/home.js'
