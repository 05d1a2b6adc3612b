import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { checkSelect, DatasetError } from '../../src/core/datasets/index.js'

const refused = (sqlText: string, allowed: string[] | null = null) =>
  assert.throws(() => checkSelect(sqlText, allowed ? new Set(allowed) : null), (e: unknown) => e instanceof DatasetError && e.code === 'SQL_REFUSED', sqlText)

describe('checkSelect', () => {
  test('accepts ordinary analytical SELECT/WITH statements', () => {
    const ok = [
      'SELECT model, SUM(tokens) AS t FROM usage WHERE day = :date GROUP BY model',
      'WITH d AS (SELECT model, tokens FROM usage WHERE day BETWEEN :from AND :to) SELECT d.model, COUNT(*) FROM d GROUP BY d.model;',
      'SELECT u.model, p.input_per_1m FROM usage AS u LEFT JOIN model_prices p ON p.model = u.model',
      'SELECT a.model FROM usage a, model_prices b WHERE a.model = b.model',
      "SELECT 'DROP TABLE org_profiles; --' AS note, ';' AS semi FROM usage",
      'SELECT EXTRACT(YEAR FROM day) AS y, SUBSTRING(model FROM 1 FOR 3) AS m FROM usage',
      'SELECT CAST(tokens AS real) / 2, tokens::bigint, ROW_NUMBER() OVER (PARTITION BY model ORDER BY day) FROM usage',
      'SELECT model FROM usage WHERE model IN (SELECT model FROM model_prices WHERE provider = :p)',
      'SELECT * FROM (SELECT model FROM usage) AS sub',
      'SELECT "model" FROM "usage"',
    ]
    for (const s of ok) checkSelect(s, new Set(['usage', 'model_prices']))
    assert.deepEqual(checkSelect(ok[1]!, null).params, ['from', 'to'])
    assert.deepEqual(checkSelect(ok[2]!, null).tables, ['model_prices', 'usage'])
  })

  test('refuses system tables, other schemas and catalogues', () => {
    refused('SELECT * FROM org_profiles')
    refused('SELECT * FROM "org_profiles"')
    refused('SELECT * FROM usage JOIN org_api_keys k ON true')
    refused('SELECT * FROM org_other.usage')
    refused('SELECT * FROM "org_other"."usage"')
    refused('SELECT * FROM public.plans')
    refused('SELECT * FROM main.usage')
    refused('SELECT * FROM information_schema.tables')
    refused('SELECT * FROM pg_catalog.pg_tables')
    refused('SELECT * FROM pg_tables')
    refused('SELECT * FROM sqlite_master')
    refused('SELECT name FROM sqlite_schema')
    refused('SELECT * FROM tenantflow_migrations')
    refused('SELECT * FROM usage WHERE model IN (TABLE org_profiles)')
    refused('SELECT x.y.z FROM usage')
    refused('SELECT other.col FROM usage')
  })

  test('refuses tables outside the catalogue when it is known', () => {
    refused('SELECT * FROM secrets', ['usage'])
    refused('WITH x AS (SELECT * FROM secrets) SELECT * FROM x', ['usage'])
    checkSelect('WITH secrets AS (SELECT * FROM usage) SELECT * FROM secrets', new Set(['usage']))
  })

  test('refuses multiple statements, comments and write or admin statements', () => {
    refused('SELECT 1; DROP TABLE usage')
    refused('SELECT 1; SELECT 2')
    refused('SELECT 1 -- ; DROP TABLE usage')
    refused('SELECT 1 /* */; DELETE FROM usage')
    refused('SELECT /* hidden */ 1')
    refused("ATTACH DATABASE '/tmp/x.db' AS x")
    refused("SELECT 1 FROM usage; ATTACH DATABASE 'x' AS y")
    refused('PRAGMA table_info(usage)')
    refused('INSERT INTO usage VALUES (1)')
    refused('UPDATE usage SET tokens = 0')
    refused('DELETE FROM usage')
    refused('DROP TABLE usage')
    refused('CREATE TABLE x AS SELECT 1')
    refused('ALTER TABLE usage ADD COLUMN x')
    refused("COPY usage TO '/tmp/x'")
    refused('CALL do_things()')
    refused('WITH d AS (DELETE FROM usage RETURNING *) SELECT * FROM d')
    refused('SELECT * INTO newtable FROM usage')
    refused('SELECT * FROM usage FOR UPDATE; SET ROLE postgres')
    refused('EXPLAIN SELECT 1')
  })

  test('refuses functions that read files, other databases or settings, and lexer tricks', () => {
    refused("SELECT pg_read_file('/etc/passwd')")
    refused("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)")
    refused("SELECT load_extension('/tmp/evil')")
    refused("SELECT readfile('/etc/passwd')")
    refused("SELECT query_to_xml('select * from org_profiles', true, true, '')")
    refused("SELECT current_setting('is_superuser')")
    refused("SELECT lo_import('/etc/passwd')")
    refused('SELECT * FROM pragma_table_info(\'usage\')')
    refused('SELECT * FROM json_each(\'[1]\')')
    refused('SELECT usage.fn(1) FROM usage')
    refused("SELECT 'x'::regclass")
    refused('SELECT $$ ; DROP TABLE usage; $$')
    refused("SELECT E'\\'; DROP TABLE usage; --'")
    refused("SELECT 'a\\' FROM usage")
    refused('SELECT * FROM usage WHERE day = ?')
    refused('SELECT * FROM usage WHERE day = $1')
    refused('SELECT `model` FROM usage')
    refused('SELECT [model] FROM usage')
    refused("SELECT 'unterminated")
    refused('SELECT (1')
    refused('VALUES (1)')
    refused('')
  })
})
