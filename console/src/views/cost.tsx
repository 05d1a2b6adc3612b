// Cost at a glance: the org's daily cost over 30 or 90 days, stacked by provider or by model, drawn
// as plain SVG (no chart library), with totals and the numbers as a table for screen readers.
import { useState } from 'preact/hooks'
import { api, enc, q } from '../api'
import type { CostSummary } from '../types'
import { Empty, ErrorBox, Loading, PageHeader, useAsync } from '../ui'

const PALETTE = ['#2563eb', '#d97706', '#059669', '#7c3aed', '#db2777', '#0891b2', '#65a30d', '#dc2626', '#4b5563', '#a16207']
const money = (n: number) => new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', maximumFractionDigits: 2 }).format(n)

function daysBetween(from: string, to: string): string[] {
  const out: string[] = []
  for (let t = Date.parse(from + 'T00:00:00Z'); t <= Date.parse(to + 'T00:00:00Z'); t += 86_400_000) out.push(new Date(t).toISOString().slice(0, 10))
  return out
}

export function Cost({ org }: { org: string }) {
  const [days, setDays] = useState(30)
  const [by, setBy] = useState<'provider' | 'model'>('provider')
  const data = useAsync(() => api<CostSummary>('GET', `/api/v1/data/${enc(org)}/cost-summary${q({ days })}`), [org, days])
  const s = data.data
  return (
    <section>
      <PageHeader title="Cost" />
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <fieldset class="segmented">
          <legend>Period</legend>
          {[30, 90].map((d) => (
            <label>
              <input type="radio" name="days" checked={days === d} onChange={() => setDays(d)} /> Last {d} days
            </label>
          ))}
        </fieldset>
        <fieldset class="segmented">
          <legend>Group by</legend>
          {(['provider', 'model'] as const).map((g) => (
            <label>
              <input type="radio" name="by" checked={by === g} onChange={() => setBy(g)} /> {g}
            </label>
          ))}
        </fieldset>
      </form>
      <ErrorBox error={data.error} />
      {data.loading && !s ? <Loading /> : null}
      {s && s.sources.length === 0 ? (
        <Empty title="No cost data yet">
          Set up <a href="#/integrations">OpenAI, Anthropic or GCP</a>, then run their daily usage pipelines.
        </Empty>
      ) : null}
      {s && s.sources.length > 0 ? <Chart summary={s} by={by} /> : null}
    </section>
  )
}

function Chart({ summary, by }: { summary: CostSummary; by: 'provider' | 'model' }) {
  const dates = daysBetween(summary.from, summary.to)
  const keyOf = (p: CostSummary['points'][number]) => (by === 'provider' ? p.provider : `${p.provider}/${p.model}`)
  const seriesTotals = new Map<string, number>()
  for (const p of summary.points) seriesTotals.set(keyOf(p), (seriesTotals.get(keyOf(p)) ?? 0) + p.cost)
  const series = [...seriesTotals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k)
  const color = (k: string) => PALETTE[series.indexOf(k) % PALETTE.length]!
  const perDay = new Map<string, Map<string, number>>()
  for (const p of summary.points) {
    const m = perDay.get(p.date) ?? new Map<string, number>()
    m.set(keyOf(p), (m.get(keyOf(p)) ?? 0) + p.cost)
    perDay.set(p.date, m)
  }
  const dayTotal = (d: string) => [...(perDay.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0)
  const max = Math.max(0.000001, ...dates.map(dayTotal))
  const W = 720
  const H = 240
  const padL = 56
  const padB = 24
  const padT = 14
  const bw = (W - padL) / dates.length
  const y = (v: number) => ((H - padB - padT) * v) / max
  return (
    <div class="cost">
      <div class="totals" data-testid="cost-totals">
        <p class="total">
          Total <strong data-testid="cost-total" data-value={summary.totals.total}>{money(summary.totals.total)}</strong>
          <span class="muted">
            {' '}
            {summary.from} to {summary.to} (UTC days)
          </span>
        </p>
        <ul class="legend">
          {series.map((k) => (
            <li>
              <span class="swatch" style={{ background: color(k) }} aria-hidden="true" />
              {k}: <strong data-series={k} data-value={Math.round(seriesTotals.get(k)! * 1e6) / 1e6}>{money(seriesTotals.get(k)!)}</strong>
            </li>
          ))}
        </ul>
      </div>
      <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Daily cost by ${by}, ${summary.from} to ${summary.to}; total ${money(summary.totals.total)}`}>
        {[0, 0.5, 1].map((f) => (
          <g>
            <line x1={padL} x2={W} y1={H - padB - y(max * f)} y2={H - padB - y(max * f)} class="grid" />
            <text x={padL - 6} y={H - padB - y(max * f) + 4} text-anchor="end" class="axis">
              {money(max * f)}
            </text>
          </g>
        ))}
        {dates.map((d, i) => {
          let acc = 0
          const m = perDay.get(d)
          return (
            <g data-date={d}>
              <title>{`${d}: ${money(dayTotal(d))}`}</title>
              {series.map((k) => {
                const v = m?.get(k) ?? 0
                if (v <= 0) return null
                const h = y(v)
                acc += h
                return <rect x={padL + i * bw + 1} width={Math.max(1, bw - 2)} y={H - padB - acc} height={h} fill={color(k)} />
              })}
              {i % Math.ceil(dates.length / 6) === 0 ? (
                <text x={padL + i * bw + bw / 2} y={H - 6} text-anchor="middle" class="axis">
                  {d.slice(5)}
                </text>
              ) : null}
            </g>
          )
        })}
      </svg>
      <details>
        <summary>Daily numbers</summary>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Day</th>
                {series.map((k) => (
                  <th scope="col" class="num">
                    {k}
                  </th>
                ))}
                <th scope="col" class="num">
                  Total
                </th>
              </tr>
            </thead>
            <tbody>
              {dates
                .filter((d) => perDay.has(d))
                .map((d) => (
                  <tr>
                    <td>{d}</td>
                    {series.map((k) => (
                      <td class="num">{money(perDay.get(d)?.get(k) ?? 0)}</td>
                    ))}
                    <td class="num">{money(dayTotal(d))}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        </div>
      </details>
    </div>
  )
}
