import { useEffect } from 'react';
import { Link } from '../router.tsx';

export function NotFoundPage() {
  useEffect(() => {
    document.title = 'Not found · cairn';
  }, []);
  return (
    <main className="page">
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. Go to <Link to="/applications">Applications</Link> or{' '}
        <Link to="/workflows">Workflows</Link>.
      </p>
    </main>
  );
}
