import { useEffect, type ReactNode } from 'react';
import { Header } from './components/Header.tsx';
import { Loading } from './components/ListStatus.tsx';
import { loginPathFor } from './lib/returnPath.ts';
import { ApplicationsPage } from './pages/ApplicationsPage.tsx';
import { LoginPage } from './pages/LoginPage.tsx';
import { NotFoundPage } from './pages/NotFoundPage.tsx';
import { WorkflowsPage } from './pages/WorkflowsPage.tsx';
import { navigate, useLocation } from './router.tsx';
import { useSession } from './session.tsx';

function page(pathname: string): ReactNode {
  switch (pathname) {
    case '/applications':
      return <ApplicationsPage />;
    case '/workflows':
      return <WorkflowsPage />;
    default:
      return <NotFoundPage />;
  }
}

export function App() {
  const { pathname, href } = useLocation();
  const { session, refresh } = useSession();

  // "/" has no page of its own.
  useEffect(() => {
    if (pathname === '/') navigate('/applications', { replace: true });
  }, [pathname]);

  // Every page but login needs a user: send anonymous visitors to login, and back here after.
  useEffect(() => {
    if (session.status === 'anonymous' && pathname !== '/login') {
      navigate(loginPathFor(href), { replace: true });
    }
  }, [session.status, pathname, href]);

  if (pathname === '/login') return <LoginPage />;

  switch (session.status) {
    case 'checking':
    case 'anonymous':
      return (
        <main className="page">
          <Loading what="your session" />
        </main>
      );
    case 'unavailable':
      return (
        <main className="page">
          <div className="state state-error" role="alert">
            <p>
              <strong>The cairn server is not answering.</strong> {session.message}
            </p>
            <button type="button" onClick={() => void refresh()}>
              Retry
            </button>
          </div>
        </main>
      );
    case 'user':
      return (
        <>
          <Header username={session.user.username} />
          {page(pathname)}
        </>
      );
  }
}
