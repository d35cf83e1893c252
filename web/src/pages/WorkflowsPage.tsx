import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { listWorkflows } from '../api.ts';
import { Empty, Forbidden, Loading, LoadError } from '../components/ListStatus.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';
import { formatTimestamp } from '../lib/format.ts';
import { namespacesOf, workflowRows } from '../lib/argo.ts';
import { navigate, useLocation } from '../router.tsx';
import { useApi } from '../useApi.ts';
import { PageHeading } from './PageHeading.tsx';

function workflowsPath(namespace: string): string {
  return namespace === '' ? '/workflows' : `/workflows?namespace=${encodeURIComponent(namespace)}`;
}

export function WorkflowsPage() {
  const { search } = useLocation();
  const namespace = (search.get('namespace') ?? '').trim();
  const [draft, setDraft] = useState(namespace);
  // Namespaces met so far, so the picker can offer them even while one namespace is shown.
  const [known, setKnown] = useState<string[]>([]);

  const fetcher = useCallback(() => listWorkflows(namespace), [namespace]);
  const { load, reload } = useApi(fetcher, `workflows:${namespace}`);

  useEffect(() => {
    document.title = 'Workflows · cairn';
  }, []);
  useEffect(() => setDraft(namespace), [namespace]);

  const now = load.state === 'ready' ? load.updatedAt : new Date();
  const rows = load.state === 'ready' ? workflowRows(load.data, now) : [];
  const seen = namespacesOf(rows).join('\n');
  useEffect(() => {
    if (seen === '') return;
    setKnown((previous) => [...new Set([...previous, ...seen.split('\n')])].sort());
  }, [seen]);

  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    navigate(workflowsPath(draft.trim()));
  };
  const where = namespace === '' ? 'all namespaces' : `namespace ${namespace}`;

  return (
    <main className="page">
      <PageHeading
        title="Workflows"
        count={load.state === 'ready' ? rows.length : undefined}
        refreshing={load.state === 'ready' && load.refreshing}
        onRefresh={reload}
      >
        <form className="namespace-picker" onSubmit={onSubmit} role="search">
          <label htmlFor="namespace">Namespace</label>
          <input
            id="namespace"
            list="known-namespaces"
            placeholder="All namespaces"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
          />
          <datalist id="known-namespaces">
            {known.map((ns) => (
              <option key={ns} value={ns} />
            ))}
          </datalist>
          <button type="submit" className="secondary">
            Show
          </button>
          {namespace !== '' && (
            <button type="button" className="link" onClick={() => navigate(workflowsPath(''))}>
              All namespaces
            </button>
          )}
        </form>
      </PageHeading>
      <p className="scope muted">Showing {where}.</p>
      {load.state === 'loading' && <Loading what="workflows" />}
      {load.state === 'forbidden' && <Forbidden what={`workflows in ${where}`} />}
      {load.state === 'error' && <LoadError what="workflows" message={load.message} onRetry={reload} />}
      {load.state === 'ready' && rows.length === 0 && (
        <Empty>
          <p>
            <strong>No workflows in {where}.</strong>
          </p>
          <p>
            Submit one with <code>kubectl create -f workflow.yaml</code> (an argoproj.io/v1alpha1
            Workflow) and it appears here.
          </p>
        </Empty>
      )}
      {load.state === 'ready' && rows.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Workflows">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Namespace</th>
                <th scope="col">Phase</th>
                <th scope="col">Started</th>
                <th scope="col">Finished</th>
                <th scope="col">Duration</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.key}>
                  <th scope="row" className="name">
                    {row.name}
                  </th>
                  <td>{row.namespace}</td>
                  <td>
                    <StatusBadge status={row.phase} />
                  </td>
                  <td>
                    <time dateTime={row.startedAt || undefined}>{formatTimestamp(row.startedAt)}</time>
                  </td>
                  <td>
                    <time dateTime={row.finishedAt || undefined}>{formatTimestamp(row.finishedAt)}</time>
                  </td>
                  <td className="num">{row.duration}</td>
                  <td className="message">{row.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
