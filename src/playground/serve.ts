/**
 * Serves the playground page on 127.0.0.1 (never another interface): GET / is the page, everything else 404.
 * The page is self-contained, so this is only a convenience over opening dist/playground.html from disk.
 */
import * as http from 'node:http';

export interface PlaygroundServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the server on port (0 = any free port); rejects with a clear message when the port is taken. */
export function servePlayground(html: string, port = 0): Promise<PlaygroundServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`playground: --port must be an integer in 0..65535, got ${port}`);
  const body = Buffer.from(html, 'utf8');
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return; }
    if (url !== '/' && url !== '/index.html' && url !== '/playground.html') { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return; }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(new Error(e.code === 'EADDRINUSE' ? `playground: port ${port} on 127.0.0.1 is already in use; choose another with --port` : `playground: cannot listen on 127.0.0.1:${port}: ${e.message}`));
    });
    server.listen(port, '127.0.0.1', () => {
      const addr = server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      resolve({ url: `http://127.0.0.1:${p}/`, port: p, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
