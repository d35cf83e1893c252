// Loads one API resource for a page, with loading/error state, a manual reload and background
// polling that keeps the rows on screen while it refreshes.

import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from './api.ts';
import { useSession } from './session.tsx';

export type Load<T> =
  | { state: 'loading' }
  | { state: 'ready'; data: T; refreshing: boolean; updatedAt: Date }
  | { state: 'forbidden'; message: string }
  | { state: 'error'; message: string };

/** How often lists refresh by themselves: often enough to watch a run, rare enough to be cheap. */
const POLL_MS = 10_000;

export function useApi<T>(fetcher: () => Promise<T>, key: string): { load: Load<T>; reload: () => void } {
  const { unauthorized } = useSession();
  const [load, setLoad] = useState<Load<T>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const lastKey = useRef(key);

  useEffect(() => {
    let cancelled = false;
    // A new key (another namespace) is a new list: show loading instead of the old rows.
    if (lastKey.current !== key) {
      lastKey.current = key;
      setLoad({ state: 'loading' });
    } else {
      setLoad((previous) => (previous.state === 'ready' ? { ...previous, refreshing: true } : previous));
    }
    fetcherRef.current().then(
      (data) => {
        if (!cancelled) setLoad({ state: 'ready', data, refreshing: false, updatedAt: new Date() });
      },
      (error: unknown) => {
        if (cancelled) return;
        if (error instanceof ApiError && error.status === 401) {
          unauthorized();
          return;
        }
        if (error instanceof ApiError && error.status === 403) {
          setLoad({ state: 'forbidden', message: error.message });
          return;
        }
        const message = error instanceof Error ? error.message : String(error);
        setLoad({ state: 'error', message });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [key, tick, unauthorized]);

  useEffect(() => {
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') setTick((t) => t + 1);
    }, POLL_MS);
    return () => window.clearInterval(timer);
  }, [key]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { load, reload };
}
