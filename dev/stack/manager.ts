/**
 * The local stack: a real Temporal dev server (with its Web UI), Google's Pub/Sub emulator and the
 * goccy BigQuery emulator, each a background process bound to 127.0.0.1 with its state and log under
 * `.local/`. `up` reuses what is already running and healthy, `down` stops only the processes it
 * started (by recorded PID), `status` reports each component.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { readSettings, type Env } from '../../src/config';
import { groupGone } from './process-group';

export const ROOT = resolve(__dirname, '../..');
/**
 * State, logs and PID files of the local stack. `STACK_DIR` (a dev-tool variable, not an app
 * setting) lets a second stack run beside the first on other ports, e.g. for benchmarks.
 */
export const LOCAL_DIR = process.env.STACK_DIR ? resolve(process.env.STACK_DIR) : join(ROOT, '.local');
export const TOOLS_BIN = join(ROOT, '.tools/bin');

/** Custom search attributes the workflows set (registered on the dev server at start). */
export const SEARCH_ATTRIBUTES: Record<string, string> = {
  PipelineState: 'Keyword',
  DataQuality: 'Keyword',
  StreamName: 'Keyword',
  XRuleTags: 'KeywordList',
};

export interface StackAddresses {
  projectId: string;
  namespace: string;
  temporalHost: string;
  temporalPort: number;
  temporalUiPort: number;
  pubsubHost: string;
  pubsubPort: number;
  bigqueryHost: string;
  bigqueryPort: number;
  bigqueryGrpcPort: number;
}

function splitHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i), Number(value.slice(i + 1))];
}

/** The stack's addresses from the same settings the workers read (emulator defaults when unset). */
export function stackAddresses(env: Env = process.env): StackAddresses {
  const v = readSettings(env);
  const [temporalHost, temporalPort] = splitHostPort(v.temporalAddress!);
  const [pubsubHost, pubsubPort] = splitHostPort(v.pubsubEmulatorHost ?? '127.0.0.1:8085');
  const bq = new URL(v.bigqueryEmulatorHost ?? 'http://127.0.0.1:9050');
  return {
    projectId: v.gcpProjectId!,
    namespace: v.temporalNamespace!,
    temporalHost,
    temporalPort,
    temporalUiPort: v.temporalUiPort!,
    pubsubHost,
    pubsubPort,
    bigqueryHost: bq.hostname,
    bigqueryPort: Number(bq.port || 80),
    bigqueryGrpcPort: v.bigqueryEmulatorGrpcPort!,
  };
}

/** Environment variables that point a worker, a test or the CLI at the local stack. */
export function stackEnv(a: StackAddresses): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: `${a.temporalHost}:${a.temporalPort}`,
    TEMPORAL_NAMESPACE: a.namespace,
    TEMPORAL_UI_URL: `http://${a.temporalHost}:${a.temporalUiPort}`,
    PUBSUB_EMULATOR_HOST: `${a.pubsubHost}:${a.pubsubPort}`,
    BIGQUERY_EMULATOR_HOST: `http://${a.bigqueryHost}:${a.bigqueryPort}`,
    GCP_PROJECT_ID: a.projectId,
    TEMPORAL_CLI_PATH: join(TOOLS_BIN, 'temporal'),
    // No GCE metadata server on a developer machine: stop google-auth from probing for one.
    METADATA_SERVER_DETECTION: 'none',
  };
}

interface Component {
  name: string;
  /** Ports this component binds; each must be free (or ours) before starting. */
  ports: { port: number; setting: string }[];
  command: string;
  args: string[];
  /** Resolves true when the component answers a real request. */
  healthy: () => Promise<boolean>;
  urls: string[];
}

async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function temporalHealthy(address: string): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: 2000 });
    const res = await conn.healthService.check({});
    return res.status === 1; // SERVING
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

/**
 * `--ui-disable-news-fetch` (no pointless outbound call from the Web UI) exists from CLI 1.8; the Go
 * fallback builds CLI 1.5.1, which would refuse it. Read once from `temporal --version`.
 */
let newsFlag: string[] | undefined;
export function temporalNewsFlag(binary = join(TOOLS_BIN, 'temporal')): string[] {
  if (newsFlag) return newsFlag;
  const out = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  const m = /version (\d+)\.(\d+)/.exec(out);
  const supported = m !== null && (Number(m[1]) > 1 || Number(m[2]) >= 8);
  newsFlag = supported ? ['--ui-disable-news-fetch'] : [];
  return newsFlag;
}

export function components(a: StackAddresses): Component[] {
  const temporalAddress = `${a.temporalHost}:${a.temporalPort}`;
  return [
    {
      name: 'temporal',
      ports: [
        { port: a.temporalPort, setting: 'TEMPORAL_ADDRESS' },
        { port: a.temporalUiPort, setting: 'TEMPORAL_UI_PORT' },
      ],
      command: join(TOOLS_BIN, 'temporal'),
      args: [
        'server',
        'start-dev',
        '--ip',
        a.temporalHost,
        '--port',
        String(a.temporalPort),
        '--ui-ip',
        a.temporalHost,
        '--ui-port',
        String(a.temporalUiPort),
        '--db-filename',
        join(LOCAL_DIR, 'temporal.db'),
        '--namespace',
        a.namespace,
        '--log-level',
        'warn',
        ...temporalNewsFlag(),
        ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([k, t]) => ['--search-attribute', `${k}=${t}`]),
      ],
      healthy: async () =>
        (await temporalHealthy(temporalAddress)) &&
        (await httpOk(`http://${a.temporalHost}:${a.temporalUiPort}/`)),
      urls: [
        `Temporal gRPC   ${temporalAddress}`,
        `Temporal Web UI http://${a.temporalHost}:${a.temporalUiPort}`,
      ],
    },
    {
      name: 'pubsub',
      ports: [{ port: a.pubsubPort, setting: 'PUBSUB_EMULATOR_HOST' }],
      command: join(TOOLS_BIN, 'cloud-pubsub-emulator'),
      args: [`--host=${a.pubsubHost}`, `--port=${a.pubsubPort}`],
      healthy: () => httpOk(`http://${a.pubsubHost}:${a.pubsubPort}/v1/projects/${a.projectId}/topics`),
      urls: [`Pub/Sub emulator ${a.pubsubHost}:${a.pubsubPort}`],
    },
    {
      name: 'bigquery',
      ports: [
        { port: a.bigqueryPort, setting: 'BIGQUERY_EMULATOR_HOST' },
        { port: a.bigqueryGrpcPort, setting: 'BIGQUERY_EMULATOR_GRPC_PORT' },
      ],
      command: join(TOOLS_BIN, 'bigquery-emulator'),
      args: [
        `--host=${a.bigqueryHost}`,
        `--port=${a.bigqueryPort}`,
        `--grpc-port=${a.bigqueryGrpcPort}`,
        `--project=${a.projectId}`,
        `--database=${join(LOCAL_DIR, 'bigquery.db')}`,
        '--log-level=warn',
      ],
      healthy: () =>
        httpOk(`http://${a.bigqueryHost}:${a.bigqueryPort}/bigquery/v2/projects/${a.projectId}/datasets`),
      urls: [`BigQuery emulator http://${a.bigqueryHost}:${a.bigqueryPort}`],
    },
  ];
}

const pidFile = (name: string) => join(LOCAL_DIR, `${name}.pid`);
const logFile = (name: string) => join(LOCAL_DIR, `${name}.log`);

function recordedPid(name: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(name), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** PID of the BigQuery emulator this manager started, if it is running. */
export function bigQueryEmulatorPid(): number | undefined {
  const pid = recordedPid('bigquery');
  return alive(pid) ? pid : undefined;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const sock = createConnection({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      res(true);
    });
    sock.once('error', () => res(false));
    sock.setTimeout(1000, () => {
      sock.destroy();
      res(false);
    });
  });
}

/**
 * Whether this process can listen on `host:port`. A connect probe alone misses a port that is the
 * local end of some outgoing connection (any port in Linux's ephemeral range, 32768-60999, can be):
 * nothing answers there, yet a server cannot bind it.
 */
function portBindable(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

/** The last non-empty line of what a component logged since `offset`, for a start-up failure. */
function lastLogLine(name: string, offset: number): string | undefined {
  const lines = readLogSince(name, offset)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const line = lines.at(-1);
  return line === undefined ? undefined : line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** A component's log says one of its ports was taken between our check and its bind. */
export function portConflictInLog(log: string): boolean {
  return /address already in use|EADDRINUSE/i.test(log);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, died: () => boolean) {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (died()) throw new Error(`${what} exited during start-up`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
  throw new Error(`${what} did not become healthy within ${timeoutMs / 1000} s`);
}

export type ComponentState = 'running' | 'running (not ours)' | 'unhealthy' | 'stopped';

export interface UpResult {
  addresses: StackAddresses;
  env: Record<string, string>;
  started: string[];
  reused: string[];
  urls: string[];
}

export class StackError extends Error {}

/** Starts every component that is not already running and healthy; waits on real health checks. */
/** Resident memory of a process in MiB (Linux), undefined when unknown. */
export function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The BigQuery emulator's embedded SQL engine (ZetaSQL compiled to wasm) never returns memory and
 * crashes once its wasm heap passes 2 GiB, which takes a few hundred DDL statements. Restarting it
 * (its state is in `.local/bigquery.db`) before it gets there keeps long test runs and demos alive.
 */
export const BIGQUERY_RECYCLE_MIB = 1000;

export async function recycleBigQueryIfBloated(log: (line: string) => void): Promise<boolean> {
  const pid = recordedPid('bigquery');
  const rss = rssMiB(pid);
  if (!alive(pid) || rss === undefined || rss < BIGQUERY_RECYCLE_MIB) return false;
  log(`restarting the BigQuery emulator (resident memory ${rss.toFixed(0)} MiB)`);
  await stackDown({ only: ['bigquery'] });
  return true;
}

/**
 * Restarts the BigQuery emulator (only when this manager started it). `fresh` also deletes its
 * database file, for test runs where every file provisions its own uniquely named datasets: a small
 * catalog keeps the emulator's start-up memory, and so its distance from the 2 GiB crash, small.
 */
export async function restartBigQuery(
  opts: { fresh?: boolean; env?: Env; log?: (line: string) => void } = {},
): Promise<void> {
  if (!alive(recordedPid('bigquery'))) return;
  await stackDown({ only: ['bigquery'], env: opts.env });
  if (opts.fresh) rmSync(bigQueryDb(), { force: true });
  await stackUp({ env: opts.env, log: opts.log });
}

const bigQueryDb = () => join(LOCAL_DIR, 'bigquery.db');

function readLogSince(name: string, offset: number): string {
  try {
    return readFileSync(logFile(name)).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/**
 * The emulator's log says it could not load its catalog from the database file (what a database
 * grown past its SQL engine's 2 GiB heap does: `panic ... slice bounds out of range` in
 * `findProjects`), as opposed to a sporadic start-up panic that a second try gets past.
 */
export function unreadableDatabase(log: string): boolean {
  return /findProjects|FindAllProjects|failed to (load|open|initialize)|database disk image is malformed|file is not a database/i.test(
    log,
  );
}

/** Moves `.local/bigquery.db` aside with a timestamp (kept for inspection); returns the line to say. */
function moveDatabaseAside(why: string): string {
  const aside = join(LOCAL_DIR, `bigquery.db.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  renameSync(bigQueryDb(), aside);
  return `BigQuery emulator: ${why}; moved it to ${relative(ROOT, aside)} and started on a fresh database`;
}

export async function stackUp(
  opts: {
    env?: Env;
    log?: (line: string) => void;
    recycleBigQuery?: boolean;
    /** Start (or check) only these components, e.g. `['temporal']` when Pub/Sub and BigQuery are real. */
    only?: string[];
    /** When the BigQuery emulator has to be started, start it on an empty database (the tests). */
    freshBigQuery?: boolean;
  } = {},
): Promise<UpResult> {
  // Hold the event loop open while starting: the health probes of a server still starting can be
  // the only thing awaited, and their handles are unref'd, so a caller without a terminal on stdin
  // (a test, a service, the demo) would see Node exit with code 0 mid-start.
  const hold = setInterval(() => undefined, 1000);
  try {
    return await startComponents(opts);
  } finally {
    clearInterval(hold);
  }
}

async function startComponents(opts: Parameters<typeof stackUp>[0] & object): Promise<UpResult> {
  const log = opts.log ?? (() => undefined);
  const addresses = stackAddresses(opts.env);
  mkdirSync(LOCAL_DIR, { recursive: true });
  if (opts.recycleBigQuery) await recycleBigQueryIfBloated(log);
  const started: string[] = [];
  const reused: string[] = [];
  const logOffsets = new Map<string, number>();
  const all = components(addresses).filter((c) => !opts.only || opts.only.includes(c.name));
  const launch = (c: Component): number | undefined => {
    logOffsets.set(c.name, existsSync(logFile(c.name)) ? statSync(logFile(c.name)).size : 0);
    const out = openSync(logFile(c.name), 'a');
    const child = spawn(c.command, c.args, { cwd: ROOT, detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    writeFileSync(pidFile(c.name), String(child.pid));
    log(`starting ${c.name} (pid ${child.pid}, log ${relative(ROOT, logFile(c.name))})`);
    return child.pid;
  };
  // Check ports and launch everything first, then wait: the three start in parallel.
  const waits: Promise<void>[] = [];
  try {
    for (const c of all) {
      if (!existsSync(c.command)) {
        throw new StackError(
          `${c.name}: ${c.command} is missing; run: bash dev/tools/install-stack-tools.sh`,
        );
      }
      const ours = alive(recordedPid(c.name));
      if (await c.healthy()) {
        reused.push(c.name);
        continue;
      }
      if (!ours) {
        // Something else holds a port: it may be another checkout's stack still starting; give it a
        // moment to answer its health check before calling it a conflict.
        if (await portInUse('127.0.0.1', c.ports[0]!.port)) {
          const healthyLater = await waitFor(c.name, c.healthy, 20_000, () => false).then(
            () => true,
            () => false,
          );
          if (healthyLater) {
            reused.push(c.name);
            continue;
          }
        }
        for (const p of c.ports) {
          if ((await portInUse('127.0.0.1', p.port)) || !(await portBindable('127.0.0.1', p.port))) {
            throw new StackError(
              `${c.name}: port ${p.port} is already in use by another process (a server, or the local end of a connection); stop it or choose another port with ${p.setting}`,
            );
          }
        }
        if (c.name === 'bigquery' && opts.freshBigQuery) rmSync(bigQueryDb(), { force: true });
        launch(c);
        started.push(c.name);
      }
      const pid = recordedPid(c.name);
      const ourStart = started.includes(c.name);
      waits.push(
        waitFor(c.name, c.healthy, 120_000, () => !alive(pid))
          .catch(async (err: Error) => {
            if (!ourStart || alive(pid)) throw err;
            const said = readLogSince(c.name, logOffsets.get(c.name) ?? 0);
            if (portConflictInLog(said)) {
              // Another process took a port after our check: a retry or a fresh database cannot help.
              throw new Error(`${err.message}: ${lastLogLine(c.name, logOffsets.get(c.name) ?? 0)}`);
            }
            if (c.name === 'bigquery' && existsSync(bigQueryDb()) && unreadableDatabase(said)) {
              // It cannot open its database (seen: a panic in its catalog load after a long run).
              log(moveDatabaseAside('its database could not be opened'));
            } else {
              // The BigQuery emulator now and then panics while it starts (a finalizer in its SQL
              // engine); a process we started that died during start-up gets one more try.
              log(`${c.name} exited during start-up; starting it once more`);
            }
            const again = launch(c);
            try {
              await waitFor(c.name, c.healthy, 120_000, () => !alive(again));
            } catch (err2) {
              if (c.name !== 'bigquery' || alive(again) || !existsSync(bigQueryDb())) throw err2;
              log(moveDatabaseAside('it exited twice while opening its database'));
              const fresh = launch(c);
              await waitFor(c.name, c.healthy, 120_000, () => !alive(fresh));
            }
          })
          .catch((err: Error) => {
            // Name the cause the component gave (its last log line) beside the log's path.
            const last = /exited during start-up$/.test(err.message)
              ? lastLogLine(c.name, logOffsets.get(c.name) ?? 0)
              : undefined;
            const why = last === undefined ? '' : ` (it said: ${last})`;
            throw new StackError(`${err.message}${why}; see ${relative(ROOT, logFile(c.name))}`);
          }),
      );
    }
    await Promise.all(waits);
  } catch (err) {
    // Leave nothing half-started behind: stop what this call started, then report the cause.
    await Promise.allSettled(waits);
    await stackDown({ env: opts.env, only: started });
    throw err;
  }
  // A server we did not start (another checkout's, a plain `temporal server start-dev`) lacks our
  // search attributes, and every workflow task that upserts them would fail: register what is missing.
  if (reused.includes('temporal') && !alive(recordedPid('temporal'))) {
    const added = await ensureSearchAttributes(
      `${addresses.temporalHost}:${addresses.temporalPort}`,
      addresses.namespace,
    );
    if (added.length > 0)
      log(`registered search attributes on the running Temporal server: ${added.join(', ')}`);
  }
  return { addresses, env: stackEnv(addresses), started, reused, urls: all.flatMap((c) => c.urls) };
}

const INDEXED_VALUE_TYPE: Record<string, number> = { Keyword: 2, KeywordList: 7 };

/** Adds the missing {@link SEARCH_ATTRIBUTES} to `namespace` through the operator service; returns their names. */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const conn = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    const { customAttributes } = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !(name in (customAttributes ?? {})));
    if (missing.length === 0) return [];
    await conn.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, INDEXED_VALUE_TYPE[type]!])),
    });
    return missing.map(([name]) => name);
  } finally {
    await conn.close();
  }
}

/** Stops only the processes this manager started (their whole process group). */
export async function stackDown(
  opts: { env?: Env; log?: (line: string) => void; only?: string[] } = {},
): Promise<string[]> {
  const log = opts.log ?? (() => undefined);
  const stopped: string[] = [];
  for (const c of components(stackAddresses(opts.env))) {
    if (opts.only && !opts.only.includes(c.name)) continue;
    const pid = recordedPid(c.name);
    if (alive(pid)) {
      try {
        process.kill(-pid!, 'SIGTERM');
      } catch {
        process.kill(pid!, 'SIGTERM');
      }
      // The whole group, not just its leader: the Pub/Sub emulator's launcher is a shell script whose
      // Java child can outlive it by a moment (a caller that checks right after would find it alive).
      if (!(await groupGone(pid!, 15_000))) {
        try {
          process.kill(-pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await groupGone(pid!, 5_000);
      }
      stopped.push(c.name);
      log(`stopped ${c.name} (pid ${pid})`);
    }
    rmSync(pidFile(c.name), { force: true });
  }
  return stopped;
}

export async function stackStatus(
  env?: Env,
): Promise<{ name: string; state: ComponentState; pid?: number }[]> {
  const out: { name: string; state: ComponentState; pid?: number }[] = [];
  for (const c of components(stackAddresses(env))) {
    const pid = recordedPid(c.name);
    const ours = alive(pid);
    const healthy = await c.healthy();
    const state: ComponentState = healthy
      ? ours
        ? 'running'
        : 'running (not ours)'
      : ours
        ? 'unhealthy'
        : 'stopped';
    out.push({ name: c.name, state, pid: ours ? pid : undefined });
  }
  return out;
}
