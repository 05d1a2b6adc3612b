// One KMS key for every bench case: the cases share the bench's private PostgreSQL database, whose
// key-check value only one key can unwrap.
export const BENCH_KMS_KEY = Buffer.alloc(32, 3).toString('base64')
