import type { ReactNode } from 'react';

export function PageHeading({
  title,
  count,
  refreshing,
  onRefresh,
  children,
}: {
  title: string;
  count: number | undefined;
  refreshing: boolean;
  onRefresh: () => void;
  children?: ReactNode;
}) {
  return (
    <div className="page-heading">
      <h1>
        {title}
        {count !== undefined && <span className="count">{count}</span>}
      </h1>
      <div className="toolbar">
        {children}
        <button type="button" className="secondary" onClick={onRefresh} aria-busy={refreshing}>
          {refreshing ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
    </div>
  );
}
