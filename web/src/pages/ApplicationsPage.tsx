import { useEffect, useState } from 'react';
import { ApiError, listApplications, syncApplication } from '../api.ts';
import { Empty, Forbidden, Loading, LoadError } from '../components/ListStatus.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';
import { applicationRows, type ApplicationRow } from '../lib/argo.ts';
import { syncOutcome, syncPath, type SyncOutcome } from '../lib/sync.ts';
import { useSession } from '../session.tsx';
import { useApi } from '../useApi.ts';
import { PageHeading } from './PageHeading.tsx';

export function ApplicationsPage() {
  const { load, reload } = useApi(listApplications, 'applications');
  const { unauthorized } = useSession();
  const [syncing, setSyncing] = useState('');
  const [outcome, setOutcome] = useState<SyncOutcome | null>(null);

  const onSync = async (row: ApplicationRow) => {
    setSyncing(row.key);
    setOutcome(null);
    try {
      await syncApplication(syncPath(row.key));
      setOutcome(syncOutcome(row.name, 200, ''));
      reload();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        unauthorized();
        return;
      }
      const status = e instanceof ApiError ? e.status : 0;
      setOutcome(syncOutcome(row.name, status, e instanceof Error ? e.message : String(e)));
    } finally {
      setSyncing('');
    }
  };

  useEffect(() => {
    document.title = 'Applications · cairn';
  }, []);

  const rows = load.state === 'ready' ? applicationRows(load.data) : [];

  return (
    <main className="page">
      <PageHeading
        title="Applications"
        count={load.state === 'ready' ? rows.length : undefined}
        refreshing={load.state === 'ready' && load.refreshing}
        onRefresh={reload}
      />
      {outcome &&
        (outcome.kind === 'started' ? (
          <div className="notice" role="status" data-testid="sync-outcome">
            {outcome.message}
          </div>
        ) : (
          <div className="alert" role="alert" data-testid="sync-outcome">
            {outcome.message}
          </div>
        ))}
      {load.state === 'loading' && <Loading what="applications" />}
      {load.state === 'forbidden' && <Forbidden what="applications" />}
      {load.state === 'error' && <LoadError what="applications" message={load.message} onRetry={reload} />}
      {load.state === 'ready' && rows.length === 0 && (
        <Empty>
          <p>
            <strong>No applications yet.</strong>
          </p>
          <p>
            Create one with <code>kubectl apply -f application.yaml</code> (an argoproj.io/v1alpha1
            Application) and it appears here.
          </p>
        </Empty>
      )}
      {load.state === 'ready' && rows.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Applications">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Project</th>
                <th scope="col">Namespace</th>
                <th scope="col">Repository / path</th>
                <th scope="col">Target revision</th>
                <th scope="col">Sync status</th>
                <th scope="col">Health status</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.key}>
                  <th scope="row" className="name">
                    {row.name}
                  </th>
                  <td>{row.project}</td>
                  <td title={row.cluster ? `cluster: ${row.cluster}` : undefined}>{row.namespace}</td>
                  <td className="repo">
                    <span className="repo-url">{row.repoURL}</span>
                    {row.path && <span className="repo-path">{row.path}</span>}
                    {row.extraSources > 0 && <span className="muted"> +{row.extraSources} more</span>}
                  </td>
                  <td>
                    <code>{row.targetRevision}</code>
                  </td>
                  <td>
                    <StatusBadge status={row.syncStatus} />
                  </td>
                  <td>
                    <StatusBadge status={row.healthStatus} />
                  </td>
                  <td>
                    <button
                      type="button"
                      className="secondary"
                      aria-label={`Sync ${row.name}`}
                      disabled={syncing !== ''}
                      onClick={() => void onSync(row)}
                    >
                      {syncing === row.key ? 'Syncing…' : 'Sync'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
