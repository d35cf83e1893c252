import { useEffect, useRef, useState, type FormEvent, type RefObject } from 'react';
import { ApiError, getAuthInfo, login } from '../api.ts';
import { describeLoginFailure } from '../lib/login.ts';
import { safeReturnPath } from '../lib/returnPath.ts';
import { LOCAL_ONLY, loginOptions, ssoLoginHref, type LoginOptions } from '../lib/sso.ts';
import { navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';

export function LoginPage() {
  const { search } = useLocation();
  const { session, refresh } = useSession();
  const returnTo = safeReturnPath(search.get('return'));
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ kind: string; message: string } | null>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  // null while /auth/info is being read: neither the SSO button nor its error flashes.
  const [options, setOptions] = useState<LoginOptions | null>(null);

  useEffect(() => {
    document.title = 'Log in · cairn';
  }, []);

  useEffect(() => {
    let cancelled = false;
    getAuthInfo().then(
      (body) => {
        if (!cancelled) setOptions(loginOptions(body));
      },
      // No /auth/info (an older server, a network error): the password form, as before SSO.
      () => {
        if (!cancelled) setOptions(LOCAL_ONLY);
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);
  const shown = options ?? LOCAL_ONLY;

  // Already logged in (e.g. a second tab): go where the user wanted.
  useEffect(() => {
    if (session.status === 'user') navigate(returnTo, { replace: true });
  }, [session.status, returnTo]);

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
      const next = await refresh();
      if (next.status !== 'user') {
        setError({ kind: 'other', message: 'Logged in, but the server did not keep the session (are cookies blocked?).' });
        setBusy(false);
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 0) {
        setError({ kind: 'other', message: e.message });
      } else if (e instanceof ApiError) {
        setError(describeLoginFailure(e.status, e.headers?.get('Retry-After') ?? null, e.body, new Date()));
      } else {
        setError({ kind: 'other', message: e instanceof Error ? e.message : String(e) });
      }
      setPassword('');
      setBusy(false);
      passwordRef.current?.focus();
    }
  };

  return (
    <main className="login-page">
      <form className="card login-card" onSubmit={onSubmit} aria-labelledby="login-title" noValidate={false}>
        <div className="login-brand">
          <img src="/favicon.svg" alt="" width={40} height={40} />
          <h1 id="login-title">Log in to cairn</h1>
        </div>
        {error && (
          <div className={`alert alert-${error.kind}`} role="alert" data-testid="login-error">
            {error.message}
          </div>
        )}
        {shown.ssoError && (
          <div className="alert alert-other" role="alert" data-testid="sso-error">
            {shown.ssoError}
          </div>
        )}
        {shown.sso && (
          <div className="sso">
            {/* A full navigation: the server redirects to the identity provider. */}
            <a className="button sso-button" href={ssoLoginHref(shown.sso.loginURL, returnTo)}>
              Log in via {shown.sso.name}
            </a>
            {shown.localLogin && <p className="sso-or">or with a local account</p>}
          </div>
        )}
        {shown.localLogin && (
          <LocalFields
            username={username}
            password={password}
            busy={busy}
            passwordRef={passwordRef}
            setUsername={setUsername}
            setPassword={setPassword}
          />
        )}
      </form>
    </main>
  );
}

function LocalFields(props: {
  username: string;
  password: string;
  busy: boolean;
  passwordRef: RefObject<HTMLInputElement | null>;
  setUsername: (value: string) => void;
  setPassword: (value: string) => void;
}) {
  const { username, password, busy, passwordRef, setUsername, setPassword } = props;
  return (
    <>
      <label htmlFor="login-username">Username</label>
      <input
        id="login-username"
        name="username"
        autoComplete="username"
        autoFocus
        required
        value={username}
        onChange={(e) => setUsername(e.target.value)}
      />
      <label htmlFor="login-password">Password</label>
      <input
        id="login-password"
        ref={passwordRef}
        name="password"
        type="password"
        autoComplete="current-password"
        required
        value={password}
        onChange={(e) => setPassword(e.target.value)}
      />
      <button type="submit" disabled={busy || username.trim() === '' || password === ''}>
        {busy ? 'Logging in…' : 'Log in'}
      </button>
      <p className="hint">
        First start? <code>cairn admin initial-password</code> prints the <code>admin</code> password.
      </p>
    </>
  );
}
