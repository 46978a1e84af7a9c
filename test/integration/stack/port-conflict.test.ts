/**
 * `npm run stack:up` when a component's port is the local end of an outgoing connection: nothing
 * answers there, yet no server can bind it (any port in Linux's ephemeral range can be one). The
 * manager must refuse by name before it starts anything, not start an emulator that exits at once.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const stackDir = mkdtempSync(join(tmpdir(), 'port-conflict-'));
let server: Server;
let client: Socket;

beforeAll(async () => {
  server = createServer(() => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = createConnection({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  await new Promise<void>((r) => client.once('connect', () => r()));
});

/** A port nothing uses at this moment. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

afterAll(async () => {
  client.destroy();
  await new Promise((r) => server.close(r));
  rmSync(stackDir, { recursive: true, force: true });
});

test('a port held by an outgoing connection is refused by name, and nothing is started', async () => {
  const held = client.localPort!;
  // Nothing answers on the held port: a connect probe alone would call it free.
  await expect(
    new Promise((res, rej) =>
      createConnection({ host: '127.0.0.1', port: held }).once('connect', res).once('error', rej),
    ),
  ).rejects.toThrow(/ECONNREFUSED/);

  const up = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'dev/stack.ts'), 'up'], {
    cwd: ROOT,
    // A private stack folder: the suite's own stack (and its recorded PIDs) stays out of it.
    env: {
      ...process.env,
      STACK_DIR: stackDir,
      TEMPORAL_ADDRESS: `127.0.0.1:${held}`,
      TEMPORAL_UI_PORT: String(await freePort()),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  up.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => up.once('exit', r));

  expect(code).toBe(1);
  expect(err.trim().split('\n')).toEqual([
    expect.stringMatching(
      new RegExp(
        `^stack: temporal: port ${held} is already in use .*choose another port with TEMPORAL_ADDRESS$`,
      ),
    ),
  ]);
  expect(readdirSync(stackDir).filter((f) => f.endsWith('.pid'))).toEqual([]);
}, 60_000);
