/**
 * The workers' health and metrics endpoint: `/healthz` (liveness: the process serves requests),
 * `/readyz` (readiness: the worker is polling), `/metrics` (Prometheus: pipeline counters plus the
 * Temporal SDK's runtime metrics, which the SDK's core exports on its own loopback port).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
  /** Where the Temporal SDK core serves its own Prometheus metrics, appended to ours. */
  sdkMetricsUrl?: string;
}

export interface HealthServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = opts.ready();
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
          .end(ready ? 'ready\n' : 'not ready\n');
      } else if (path === '/metrics') {
        let body = await opts.registry.metrics();
        if (opts.sdkMetricsUrl) {
          try {
            const r = await fetch(opts.sdkMetricsUrl, { signal: AbortSignal.timeout(2000) });
            if (r.ok) body += '\n' + (await r.text());
          } catch {
            // SDK metrics are best effort; the pipeline's own counters are always served.
          }
        }
        res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body);
      } else {
        res.writeHead(404).end();
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${opts.host}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
