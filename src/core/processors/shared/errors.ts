// Converts dataset failures into ProcessorErrors. DatasetError messages are safe by construction
// (validated identifiers and fixed reasons), so they are kept; anything else becomes generic.
import { DatasetError } from '../../datasets/errors.js'
import { ProcessorError } from '../types.js'

export function toProcessorError(err: unknown): unknown {
  if (err instanceof ProcessorError) return err
  if (!(err instanceof DatasetError)) return err
  switch (err.code) {
    case 'LIMIT_EXCEEDED':
      return new ProcessorError('LIMIT_EXCEEDED', err.message)
    case 'QUERY_TIMEOUT':
      return new ProcessorError('QUERY_TIMEOUT', err.message)
    case 'QUERY_FAILED':
      return new ProcessorError('PROCESSOR_ERROR', err.message, { retryable: true })
    case 'DATASET_UNAVAILABLE':
      return new ProcessorError('DATASET_UNAVAILABLE', err.message, { retryable: true })
    case 'WRITE_FENCED':
      return new ProcessorError('CANCELLED', err.message)
    case 'DATASET_NOT_FOUND':
      return new ProcessorError('PROCESSOR_ERROR', err.message)
    default:
      return new ProcessorError('INVALID_DATA', err.message)
  }
}

/** Runs dataset work, rethrowing dataset failures as ProcessorErrors. */
export async function datasetOp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw toProcessorError(err)
  }
}
