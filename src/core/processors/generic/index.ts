export { createHttpExtractProcessor, validateHttpExtractConfig, type HttpExtractConfig } from './http-extract.js'
export { createSqlTransformProcessor, validateSqlTransformConfig, type SqlTransformConfig } from './sql-transform.js'
