/**
 * The whole local pipeline as a test rig, shared by `npm run bench`, `npm run chaos` and the e2e chaos
 * test: the stack (already up), an in-process X stand-in (its ledger is the truth), the stream and
 * batch workers as child processes (like `npm run demo`; they can be SIGKILLed and restarted), under
 * `tsx` or, with `production` / `BENCH_BUILD=1`, from the `npm run build` output (built first when
 * missing or older than the sources; see {@link ensureProductionBuild}), a Temporal client, /proc sampling of the workers and emulators, and the BigQuery checks (ledger vs
 * `posts` + `posts_dead_letter`, latency histogram).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import { connectClient } from '../../src/adapters/temporal/connection';
import type { BigQuery } from '@google-cloud/bigquery';
import { createBigQueryClient } from '../../src/adapters/bigquery/client';
import { loadConfig, type AppConfig } from '../../src/config';
import { loadWorkflowId, supervisorWorkflowId, type PipelineStatus } from '../../src/domain/pipeline-status';
import { createLogger } from '../../src/observability/logger';
import { provision } from '../../src/workers/setup';
import type { LoadStats } from '../../src/workflows/load';
import { loadStatsQuery, statusQuery, stopSignal } from '../../src/workflows/messages';
import { supervisorWorkflow } from '../../src/workflows/supervisor';
import { startXStandin, type StandinOptions, type XStandin } from '../x-api-standin/server';
import { LOCAL_DIR, ROOT } from '../stack/manager';

export type WorkerKind = 'stream' | 'batch';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const CLK_TCK = 100;

/** CPU seconds (user + system) and resident MiB of a process, from /proc. */
export function procSample(pid: number | undefined): { cpuSeconds: number; rssMiB: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpuSeconds, rssMiB: m ? Number(m[1]) / 1024 : 0 };
  } catch {
    return undefined;
  }
}

export function stackPid(name: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(LOCAL_DIR, `${name}.pid`), 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcStats {
  peakRssMiB: number;
  /** Mean CPU over the window, in % of one core. */
  cpuPercent: number;
  cpuSeconds: number;
}

/**
 * Worker processes this rig started. They are killed when this process exits, however it exits (a
 * jest timeout with --forceExit included): an orphaned worker would keep loading into the emulators
 * and disturb whatever runs next.
 */
const spawned = new Set<ChildProcess>();
let reaperInstalled = false;
function installExitReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.once('exit', () => {
    for (const child of spawned) child.kill('SIGKILL');
  });
}

/** Samples named processes every `everyMs`; `stop()` returns peak RSS and mean CPU per name. */
export function startSampler(pids: () => Record<string, number | undefined>, everyMs = 500) {
  const acc = new Map<string, { peak: number; cpu: number; last?: { pid: number; cpu: number } }>();
  const t0 = Date.now();
  const tick = () => {
    for (const [name, pid] of Object.entries(pids())) {
      const s = procSample(pid);
      if (!s || pid === undefined) continue;
      const a = acc.get(name) ?? { peak: 0, cpu: 0 };
      a.peak = Math.max(a.peak, s.rssMiB);
      // A restarted process (new pid) starts its own CPU count.
      if (a.last && a.last.pid === pid) a.cpu += Math.max(0, s.cpuSeconds - a.last.cpu);
      a.last = { pid, cpu: s.cpuSeconds };
      acc.set(name, a);
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop(): Record<string, ProcStats> {
      clearInterval(timer);
      tick();
      const secs = Math.max(0.001, (Date.now() - t0) / 1000);
      const out: Record<string, ProcStats> = {};
      for (const [name, a] of acc) {
        out[name] = {
          peakRssMiB: Math.round(a.peak),
          cpuPercent: Math.round((a.cpu / secs) * 100),
          cpuSeconds: Number(a.cpu.toFixed(1)),
        };
      }
      return out;
    },
  };
}

/** Where `npm run build` puts the workflow bundle and the compiled workers (scripts/build-workflow-bundle.ts). */
export const DIST_BUNDLE = join(ROOT, 'dist/workflow-bundle.js');
export const distWorker = (kind: WorkerKind) => join(ROOT, `dist/src/workers/${kind}-worker.js`);

/** Newest modification time (ms) of the build's inputs: src/, scripts/, dev/ (.ts), the tsconfigs, package files. */
function newestSourceMtime(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const d of ['src', 'scripts', 'dev']) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'])
    if (existsSync(join(ROOT, f))) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/**
 * Runs `npm run build` unless its output (the workflow bundle, written last, and both workers) is
 * newer than every source. Note that it builds the working tree as it is, uncommitted edits included.
 */
export function ensureProductionBuild(log: (line: string) => void = () => undefined): { built: boolean } {
  const outputs = [DIST_BUNDLE, distWorker('stream'), distWorker('batch')];
  const oldest = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  if (oldest > newestSourceMtime()) return { built: false };
  log('npm run build (dist/ missing or older than the sources)');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
  if (r.status !== 0)
    throw new Error(`npm run build failed (${r.status}): ${`${r.stdout}\n${r.stderr}`.slice(-2000)}`);
  return { built: true };
}

export interface PipelineOptions {
  /**
   * Run the workers from the production build (`node dist/src/workers/<kind>-worker.js`, the
   * prebuilt workflow bundle, NODE_ENV=production), building first when needed; otherwise under
   * `tsx`. @default process.env.BENCH_BUILD === '1'
   */
  production?: boolean;
  /** Resource names (dataset, topic, subscription) are derived from it. */
  tag: string;
  standin?: StandinOptions;
  /** Settings for the workers and this harness alike (e.g. private task queues). */
  env?: Record<string, string>;
  /** Extra environment of both workers only (e.g. proxy addresses, LOAD_INTERVAL_MS). */
  workerEnv?: Record<string, string>;
  /** Append each worker's output (stdout and stderr) to `<dir>/<kind>-worker.log`; default: discard. */
  workerLogDir?: string;
  log?: (line: string) => void;
}

export interface Pipeline {
  /** Whether the workers run from the production build (see {@link PipelineOptions.production}). */
  production: boolean;
  standin: XStandin;
  client: Client;
  config: AppConfig;
  bq: BigQuery;
  env: NodeJS.ProcessEnv;
  workers: Record<WorkerKind, ChildProcess | undefined>;
  startWorker(kind: WorkerKind): ChildProcess;
  /** SIGKILL (or SIGTERM) a worker and wait until it is gone. */
  killWorker(kind: WorkerKind, signal?: NodeJS.Signals): Promise<void>;
  startSupervisor(streamName: string, extra?: Record<string, unknown>): Promise<void>;
  stopSupervisor(streamName: string, timeoutMs?: number): Promise<void>;
  status(streamName: string): Promise<PipelineStatus | undefined>;
  loadStats(streamName: string): Promise<LoadStats | undefined>;
  /** Events of every run (continue-as-new chain included) of the supervisor and load workflows. */
  historyEvents(streamName: string): Promise<{ supervisor: number; load: number }>;
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  table(name: 'posts' | 'dead' | 'runs'): string;
  close(): Promise<void>;
}

export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const log = opts.log ?? (() => undefined);
  const port = Number(process.env.X_STANDIN_PORT ?? 0);
  const standin = await startXStandin({ port, seed: 42, keepAliveMs: 5000, rate: 0, ...opts.standin });
  const names = {
    PUBSUB_TOPIC: `${opts.tag}_posts`,
    PUBSUB_SUBSCRIPTION: `${opts.tag}_posts_load`,
    PUBSUB_DEAD_LETTER_TOPIC: `${opts.tag}_posts_dead`,
    BIGQUERY_DATASET: opts.tag,
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
    DQ_INTERVAL_MS: '600000',
    ...opts.env,
    ...names,
    X_API_BASE_URL: standin.url,
    // The stand-in accepts any token; this is not a credential.
    X_BEARER_TOKEN: 'local-standin',
  };
  const config = loadConfig({ ...env });
  await provision(config, createLogger({ level: 'warn', format: 'json' }));
  const production = opts.production ?? process.env.BENCH_BUILD === '1';
  if (production) ensureProductionBuild(log);
  const workerEnvBase: NodeJS.ProcessEnv = {
    ...env,
    ...(production ? { NODE_ENV: 'production' } : {}),
    ...opts.workerEnv,
  };
  const client = await connectClient(config.temporal);
  const bq = createBigQueryClient(config.gcp);
  const workers: Record<WorkerKind, ChildProcess | undefined> = { stream: undefined, batch: undefined };

  const startWorker = (kind: WorkerKind): ChildProcess => {
    installExitReaper();
    const args = production
      ? [distWorker(kind)]
      : ['--import', 'tsx', join(ROOT, `src/workers/${kind}-worker.ts`)];
    let logFd: number | undefined;
    if (opts.workerLogDir) {
      mkdirSync(opts.workerLogDir, { recursive: true });
      logFd = openSync(join(opts.workerLogDir, `${kind}-worker.log`), 'a');
    }
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: workerEnvBase,
      stdio: ['ignore', logFd ?? 'ignore', 'pipe'],
    });
    let tail = '';
    child.stderr?.on('data', (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2000);
      if (logFd !== undefined) writeSync(logFd, b);
    });
    if (logFd !== undefined) child.once('exit', () => closeSync(logFd));
    child.once('exit', (code, signal) => {
      if (workers[kind] === child) {
        workers[kind] = undefined;
        if (code !== 0 && signal !== 'SIGKILL' && signal !== 'SIGTERM')
          log(`${kind} worker exited (${signal ?? code}) ${tail}`);
      }
    });
    workers[kind] = child;
    spawned.add(child);
    child.once('exit', () => spawned.delete(child));
    return child;
  };

  const killWorker = async (kind: WorkerKind, signal: NodeJS.Signals = 'SIGKILL') => {
    const child = workers[kind];
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await Promise.race([gone, sleep(30_000)]);
    workers[kind] = undefined;
  };

  const table = (name: 'posts' | 'dead' | 'runs') =>
    `\`${config.gcp.projectId}.${config.gcp.dataset}.${
      name === 'posts'
        ? config.gcp.tables.posts
        : name === 'dead'
          ? config.gcp.tables.deadLetter
          : config.gcp.tables.loadRuns
    }\``;

  return {
    production,
    standin,
    client,
    config,
    bq,
    env: workerEnvBase,
    workers,
    startWorker,
    killWorker,
    async startSupervisor(streamName, extra = {}) {
      await client.workflow.start(supervisorWorkflow, {
        workflowId: supervisorWorkflowId(streamName),
        taskQueue: config.temporal.streamTaskQueue,
        args: [{ streamName, children: { load: true, quality: false }, ...extra }],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      });
    },
    async stopSupervisor(streamName, timeoutMs = 90_000) {
      const h = client.workflow.getHandle(supervisorWorkflowId(streamName));
      try {
        await h.signal(stopSignal);
        await Promise.race([h.result(), sleep(timeoutMs)]);
      } catch (err) {
        log(`stop ${streamName}: ${(err as Error).message}`);
      }
    },
    async status(streamName) {
      try {
        return await client.workflow.getHandle(supervisorWorkflowId(streamName)).query(statusQuery);
      } catch {
        return undefined;
      }
    },
    async loadStats(streamName) {
      try {
        return await client.workflow.getHandle(loadWorkflowId(streamName)).query(loadStatsQuery);
      } catch {
        return undefined;
      }
    },
    async historyEvents(streamName) {
      const count = async (workflowId: string) => {
        let n = 0;
        for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
          n += wf.historyLength;
        }
        return n;
      };
      return {
        supervisor: await count(supervisorWorkflowId(streamName)),
        load: await count(loadWorkflowId(streamName)),
      };
    },
    async query<T>(sql: string, params?: Record<string, unknown>) {
      const [rows] = await bq.query({ query: sql, params });
      return rows as T[];
    },
    table,
    async close() {
      await Promise.all((['stream', 'batch'] as const).map((k) => killWorker(k, 'SIGTERM')));
      await standin.close();
      await client.connection.close();
    },
  };
}

/** Waits until `probe` holds, polling every `everyMs`; returns false at the deadline. */
export async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return true;
    } catch {
      /* not yet */
    }
    await sleep(everyMs);
  }
  return false;
}

/** p50/p95/p99 from a histogram of {bucket start ms: count}. */
export function percentiles(hist: { ms: number; n: number }[], ps = [50, 95, 99]): Record<string, number> {
  const sorted = [...hist].sort((a, b) => a.ms - b.ms);
  const total = sorted.reduce((s, h) => s + h.n, 0);
  const out: Record<string, number> = {};
  for (const p of ps) {
    let seen = 0;
    let v = NaN;
    for (const h of sorted) {
      seen += h.n;
      if (seen >= (p / 100) * total) {
        v = h.ms;
        break;
      }
    }
    out[`p${p}`] = v;
  }
  return out;
}

/** The ledger's truth vs `posts` + `posts_dead_letter` since `sinceIso` (or everything). */
export async function verify(
  p: Pipeline,
  ledgerIds: readonly string[],
  malformedWritten: number,
  sinceIso?: string,
): Promise<{
  ledgerPosts: number;
  ledgerDistinct: number;
  rows: number;
  distinctRows: number;
  lost: number;
  duplicates: number;
  extra: number;
  malformedWritten: number;
  malformedDeadLetters: number;
  lostSample: string[];
}> {
  const where = sinceIso ? 'WHERE received_at >= TIMESTAMP(@since)' : '';
  const params = sinceIso ? { since: sinceIso } : undefined;
  const [agg] = await p.query<{ n: number; d: number }>(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM ${p.table('posts')} ${where}`,
    params,
  );
  const ids = new Set(
    (await p.query<{ id: string }>(`SELECT DISTINCT id FROM ${p.table('posts')} ${where}`, params)).map(
      (r) => r.id,
    ),
  );
  const distinct = new Set(ledgerIds);
  const lost = [...distinct].filter((id) => !ids.has(id));
  let extra = 0;
  for (const id of ids) if (!distinct.has(id)) extra++;
  const [dl] = await p.query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM ${p.table('dead')} WHERE error_stage = 'malformed'` +
      (sinceIso ? ' AND first_seen >= TIMESTAMP(@since)' : ''),
    params,
  );
  return {
    ledgerPosts: ledgerIds.length,
    ledgerDistinct: distinct.size,
    rows: Number(agg.n),
    distinctRows: Number(agg.d),
    lost: lost.length,
    duplicates: Number(agg.n) - Number(agg.d),
    extra,
    malformedWritten,
    malformedDeadLetters: Number(dl.n),
    lostSample: lost.slice(0, 5),
  };
}
