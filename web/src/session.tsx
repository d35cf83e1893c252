// Who is logged in, shared by every page; and the one place that sends a user to the login page.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ApiError, getUserInfo, type UserInfo } from './api.ts';
import { loginPathFor } from './lib/returnPath.ts';
import { navigate } from './router.tsx';

export type Session =
  | { status: 'checking' }
  | { status: 'anonymous' }
  | { status: 'user'; user: UserInfo }
  | { status: 'unavailable'; message: string };

interface SessionApi {
  session: Session;
  /** Re-reads userinfo (after login). */
  refresh: () => Promise<Session>;
  /** The server said 401: forget the user and go to login, coming back here afterwards. */
  unauthorized: () => void;
  /** After logout: forget the user and show the login page. */
  signedOut: () => void;
}

const SessionContext = createContext<SessionApi | undefined>(undefined);

async function loadSession(): Promise<Session> {
  try {
    const user = await getUserInfo();
    return user.loggedIn ? { status: 'user', user } : { status: 'anonymous' };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return { status: 'anonymous' };
    const message = error instanceof Error ? error.message : String(error);
    return { status: 'unavailable', message };
  }
}

function currentPath(): string {
  return window.location.pathname + window.location.search;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session>({ status: 'checking' });

  const refresh = useCallback(async () => {
    const next = await loadSession();
    setSession(next);
    return next;
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const unauthorized = useCallback(() => {
    setSession({ status: 'anonymous' });
    navigate(loginPathFor(currentPath()), { replace: true });
  }, []);

  const signedOut = useCallback(() => {
    setSession({ status: 'anonymous' });
    navigate('/login', { replace: true });
  }, []);

  const value = useMemo(
    () => ({ session, refresh, unauthorized, signedOut }),
    [session, refresh, unauthorized, signedOut],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionApi {
  const api = useContext(SessionContext);
  if (!api) throw new Error('useSession must be used inside <SessionProvider>');
  return api;
}
