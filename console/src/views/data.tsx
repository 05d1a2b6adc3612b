// Data tables: the org's tables with row counts, then one table's rows with a date filter and paging.
import { useState } from 'preact/hooks'
import { api, enc, q } from '../api'
import type { TableInfo } from '../types'
import { Empty, ErrorBox, Loading, PageHeader, Pager, Time, useAsync, useCursorStack } from '../ui'

export function DataTables({ org }: { org: string }) {
  const list = useAsync(() => api<{ tables: TableInfo[] }>('GET', `/api/v1/data/${enc(org)}/tables`), [org])
  return (
    <section>
      <PageHeader title="Data" />
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.tables.length === 0 ? <Empty title="No data loaded yet">Runs write their tables here: <a href="#/pipelines">run a pipeline</a>.</Empty> : null}
      {list.data && list.data.tables.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Tables in your dataset</caption>
            <thead>
              <tr>
                <th scope="col">Table</th>
                <th scope="col" class="num">Rows</th>
                <th scope="col">Columns</th>
                <th scope="col">Last load</th>
              </tr>
            </thead>
            <tbody>
              {list.data.tables.map((t) => (
                <tr key={t.name}>
                  <td>
                    <a href={`#/data/${enc(t.name)}`}>{t.name}</a>
                  </td>
                  <td class="num" data-testid={`rows-${t.name}`}>
                    {t.row_count}
                  </td>
                  <td>{t.columns.length}</td>
                  <td>
                    <Time iso={t.updated_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  )
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

export function TableRows({ org, table }: { org: string; table: string }) {
  const info = useAsync(() => api<{ tables: TableInfo[] }>('GET', `/api/v1/data/${enc(org)}/tables`), [org])
  const [from, setFrom] = useState('')
  const [to, setTo] = useState('')
  const [applied, setApplied] = useState({ from: '', to: '' })
  const pages = useCursorStack()
  const rows = useAsync(
    () => api<{ rows: Record<string, unknown>[]; next_cursor: string | null }>('GET', `/api/v1/data/${enc(org)}/tables/${enc(table)}/rows${q({ limit: 50, cursor: pages.cursor, date_from: applied.from, date_to: applied.to })}`),
    [org, table, pages.cursor, applied.from, applied.to],
  )
  const spec = info.data?.tables.find((t) => t.name === table)
  const columns = spec?.columns.map((c) => c.name) ?? Object.keys(rows.data?.rows[0] ?? {})
  return (
    <section>
      <PageHeader title={table} />
      <p>
        <a href="#/data">← All tables</a>
        {spec ? <span class="muted"> · {spec.row_count} rows · key {spec.natural_key.join(', ')}</span> : null}
      </p>
      {spec?.date_column ? (
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault()
            pages.reset()
            setApplied({ from, to })
          }}
        >
          <label>
            From
            <input type="date" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
          </label>
          <label>
            To
            <input type="date" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
          </label>
          <button type="submit">Filter by {spec.date_column}</button>
        </form>
      ) : null}
      <ErrorBox error={rows.error} />
      {rows.loading && !rows.data ? <Loading /> : null}
      {rows.data && rows.data.rows.length === 0 ? <Empty title="No rows in this range">Widen the date range or clear it.</Empty> : null}
      {rows.data && rows.data.rows.length > 0 ? (
        <div class="table-wrap">
          <table class="data" data-testid="data-rows">
            <caption class="sr-only">Rows of {table}</caption>
            <thead>
              <tr>
                {columns.map((c) => (
                  <th scope="col">{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.data.rows.map((r) => (
                <tr>
                  {columns.map((c) => (
                    <td>{cell(r[c])}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager hasPrev={pages.hasPrev} next={rows.data?.next_cursor ?? null} onPrev={pages.pop} onNext={() => rows.data?.next_cursor && pages.push(rows.data.next_cursor)} />
    </section>
  )
}
