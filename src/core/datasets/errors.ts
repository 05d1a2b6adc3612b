// Typed dataset failures. Messages name only validated identifiers or fixed reasons: never a
// submitted value, SQL text, file path or driver error text.
export type DatasetErrorCode =
  | 'INVALID_IDENTIFIER'
  | 'INVALID_SPEC'
  | 'SCHEMA_CONFLICT'
  | 'TABLE_NOT_FOUND'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_EXISTS'
  | 'INVALID_VALUE'
  | 'INVALID_CURSOR'
  | 'INVALID_FILTER'
  | 'SQL_REFUSED'
  | 'SQL_PARAM_MISSING'
  | 'LIMIT_EXCEEDED'
  | 'QUERY_FAILED'
  /** The warehouse (BigQuery) could not be reached or kept failing: retry later. */
  | 'DATASET_UNAVAILABLE'
  /** Template SQL ran past its deadline and was stopped. */
  | 'QUERY_TIMEOUT'
  /** The writer's fence closed (its step aborted, or its run lost its lease): nothing was written. */
  | 'WRITE_FENCED'

export class DatasetError extends Error {
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'DatasetError'
  }
}
