import { useState } from 'react';
import { ApiError, logout } from '../api.ts';
import { logoutTarget } from '../lib/sso.ts';
import { Link, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';

const NAV = [
  { to: '/applications', label: 'Applications' },
  { to: '/workflows', label: 'Workflows' },
];

export function Header({ username }: { username: string }) {
  const { pathname } = useLocation();
  const { signedOut } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const onLogout = async () => {
    setBusy(true);
    setError('');
    try {
      const target = logoutTarget(await logout());
      // An SSO session with the provider's logoutURL configured: end the provider's session too.
      if ('external' in target) {
        window.location.assign(target.external);
        return;
      }
      signedOut();
    } catch (e) {
      // 401: the session had already ended, which is what the user asked for anyway.
      if (e instanceof ApiError && e.status === 401) {
        signedOut();
        return;
      }
      setError(e instanceof Error ? `Logout failed: ${e.message}` : 'Logout failed.');
      setBusy(false);
    }
  };

  return (
    <header className="topbar">
      <Link to="/applications" className="brand" aria-label="cairn home">
        <img src="/favicon.svg" alt="" width={24} height={24} />
        <span>cairn</span>
      </Link>
      <nav aria-label="Main">
        <ul>
          {NAV.map((item) => {
            const current = pathname === item.to || pathname.startsWith(`${item.to}/`);
            return (
              <li key={item.to}>
                <Link to={item.to} aria-current={current ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            );
          })}
        </ul>
      </nav>
      <div className="account">
        {error && (
          <span role="alert" className="account-error">
            {error}
          </span>
        )}
        <span className="user" data-testid="current-user" title="Logged in as">
          {username}
        </span>
        <button type="button" className="secondary" onClick={onLogout} disabled={busy}>
          {busy ? 'Logging out…' : 'Log out'}
        </button>
      </div>
    </header>
  );
}
