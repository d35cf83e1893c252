// The non-table states every list shares: loading, not permitted, error, empty.

import type { ReactNode } from 'react';

export function Loading({ what }: { what: string }) {
  return (
    <div className="state" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Forbidden({ what }: { what: string }) {
  return (
    <div className="state state-forbidden" role="alert">
      <strong>Not permitted.</strong> Your account is not allowed to list {what}. Ask an
      administrator for a role that grants it.
    </div>
  );
}

export function LoadError({ what, message, onRetry }: { what: string; message: string; onRetry: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <p>
        <strong>Could not load {what}.</strong> {message}
      </p>
      <button type="button" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state state-empty">{children}</div>;
}
