import { statusTone } from '../lib/argo.ts';

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${statusTone(status)}`}>{status}</span>;
}
