/**
 * A loopback TCP proxy the chaos run puts between the workers and an emulator. `pause()` makes the
 * emulator unreachable for the workers (every open connection is reset, new ones are accepted and
 * reset at once, like a server that went away) until `resume()`.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** host:port of the proxy. */
  address: string;
  paused(): boolean;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  let isPaused = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    if (isPaused) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const done = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as net.AddressInfo).port;
  return {
    port: bound,
    address: `127.0.0.1:${bound}`,
    paused: () => isPaused,
    pause() {
      isPaused = true;
      for (const [c, u] of pairs) {
        c.resetAndDestroy();
        u.destroy();
      }
      pairs.clear();
    },
    resume() {
      isPaused = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [c, u] of pairs) {
          c.destroy();
          u.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
