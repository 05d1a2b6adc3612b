// Audit logs: the org's own (when the server has the org audit route) and the operator's across orgs.
import { api, ApiFailure, enc, q } from '../api'
import type { AuditEntry } from '../types'
import { Empty, ErrorBox, Loading, PageHeader, Pager, Time, useAsync, useCursorStack } from '../ui'

export function AuditTable({ logs, showOrg }: { logs: AuditEntry[]; showOrg: boolean }) {
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">Audit log, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            {showOrg ? <th scope="col">Organization</th> : null}
            <th scope="col">Action</th>
            <th scope="col">Resource</th>
            <th scope="col">Actor</th>
          </tr>
        </thead>
        <tbody>
          {logs.map((l) => (
            <tr key={l.audit_id}>
              <td>
                <Time iso={l.created_at} />
              </td>
              {showOrg ? (
                <td>
                  <a href={`#/orgs/${enc(l.org_slug ?? '')}`}>{l.org_slug}</a>
                </td>
              ) : null}
              <td>{l.action}</td>
              <td>
                {l.resource_type}
                {l.resource_id ? <code> {l.resource_id}</code> : null}
              </td>
              <td>{l.actor}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

export function OrgAudit({ org }: { org: string }) {
  const pages = useCursorStack()
  const list = useAsync(() => api<{ logs: AuditEntry[]; next_cursor: string | null }>('GET', `/api/v1/organizations/${enc(org)}/audit-logs${q({ limit: 50, cursor: pages.cursor })}`), [org, pages.cursor])
  const missing = list.error instanceof ApiFailure && list.error.status === 404
  return (
    <section>
      <PageHeader title="Audit log" />
      {missing ? <Empty title="This server does not offer the organization audit log yet">Ask your operator: they can read it from the operator console.</Empty> : <ErrorBox error={list.error} />}
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.logs.length === 0 ? <Empty title="Nothing recorded yet" /> : null}
      {list.data && list.data.logs.length > 0 ? <AuditTable logs={list.data.logs} showOrg={false} /> : null}
      <Pager hasPrev={pages.hasPrev} next={list.data?.next_cursor ?? null} onPrev={pages.pop} onNext={() => list.data?.next_cursor && pages.push(list.data.next_cursor)} />
    </section>
  )
}

export function AllAudit() {
  const pages = useCursorStack()
  const list = useAsync(() => api<{ logs: AuditEntry[]; next_cursor: string | null }>('GET', `/api/v1/admin/audit-logs${q({ limit: 50, cursor: pages.cursor })}`), [pages.cursor])
  return (
    <section>
      <PageHeader title="Audit log (all organizations)" />
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.logs.length === 0 ? <Empty title="Nothing recorded yet">Onboard an organization to start the trail.</Empty> : null}
      {list.data && list.data.logs.length > 0 ? <AuditTable logs={list.data.logs} showOrg /> : null}
      <Pager hasPrev={pages.hasPrev} next={list.data?.next_cursor ?? null} onPrev={pages.pop} onNext={() => list.data?.next_cursor && pages.push(list.data.next_cursor)} />
    </section>
  )
}
