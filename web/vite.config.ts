import { defineConfig } from 'vite';

// No framework plugin: Vite's built-in transform compiles TSX with React's automatic JSX
// runtime, which is all this app needs (no fast refresh in dev, by choice: fewer dependencies).
export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'react' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Hashed file names under dist/assets/ are what lets src/web.rs serve them as immutable.
    assetsDir: 'assets',
    // Inline nothing as data: URLs, so the Content-Security-Policy can stay at default-src 'self'.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    // `npm run dev` proxies the API to a locally running `cairn server`.
    proxy: {
      '/api': { target: process.env.CAIRN_URL ?? 'http://127.0.0.1:8080', changeOrigin: false },
    },
  },
});
