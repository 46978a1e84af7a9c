/**
 * `npm run demo`: the whole pipeline on this machine. Brings up the local stack (Temporal + Web UI,
 * Pub/Sub and BigQuery emulators), the X API stand-in (unless X credentials or X_API_BASE_URL are
 * set), the stream worker, the batch worker and the dashboard; starts the supervisor workflow; and
 * (with X_BEARER_TOKEN and GCP_PROJECT_ID set and no emulator host) uses the real Pub/Sub and BigQuery;
 * prints live progress until Ctrl-C, which stops the workflow (drain), the processes and the parts of
 * the stack it started.
 *
 * It holds up the way a deployment does: a worker or the dashboard that exits unexpectedly is
 * restarted with back-off (see `demo/worker-process.ts`), a BigQuery emulator that died is started
 * again on its database (and counted), and a demo that fails for any reason stops everything it
 * started and prints one line saying why.
 */
import { join } from 'node:path';
import { WorkflowIdConflictPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { loadConfig, type AppConfig } from '../src/config';
import { loadWorkflowId, supervisorWorkflowId, type PipelineStatus } from '../src/domain/pipeline-status';
import { createLogger } from '../src/observability/logger';
import { provision } from '../src/workers/setup';
import { connectClient } from '../src/adapters/temporal/connection';
import { loadStatsQuery, pauseSignal, statusQuery, stopSignal } from '../src/workflows/messages';
import { supervisorWorkflow } from '../src/workflows/supervisor';
import { formatRate, RateWindow } from './demo/progress';
import { WorkerProcess } from './demo/worker-process';
import { startXStandin, type XStandin } from './x-api-standin/server';
import { bigQueryEmulatorPid, ROOT, rssMiB, stackDown, stackUp, type UpResult } from './stack/manager';

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Settings that make the demo lively; any of them can still be overridden from the environment. */
const DEMO_DEFAULTS: Record<string, string> = {
  LOAD_INTERVAL_MS: '10000',
  DQ_INTERVAL_MS: '60000',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'warn',
};

/** The first line of an error, with the first nested cause when the message alone says nothing. */
export function oneLine(err: unknown): string {
  const e = err as { message?: unknown; errors?: { message?: unknown }[] };
  let msg = typeof e?.message === 'string' ? e.message : String(err);
  const inner = Array.isArray(e?.errors) ? e.errors.find((x) => typeof x?.message === 'string') : undefined;
  if (inner && /multiple errors/i.test(msg)) msg = `${msg}: ${String(inner.message)}`;
  return msg.split('\n')[0]!.slice(0, 300);
}

/** Everything this demo started, so that any way out stops all of it. */
class Resources {
  up?: UpResult;
  standin?: XStandin;
  client?: Client;
  workers: WorkerProcess[] = [];
  timers: NodeJS.Timeout[] = [];
  /** Ticks and watchdog rounds still running: awaited before the connection closes under them. */
  inflight = new Set<Promise<unknown>>();
  private released?: Promise<void>;

  /** Runs `work` as tracked background work (see {@link inflight}). */
  track(work: Promise<unknown>): void {
    const p = work.catch(() => undefined).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Stops everything this demo started; once, however many ways out call it. */
  release(): Promise<void> {
    this.released ??= this.doRelease();
    return this.released;
  }

  private async doRelease(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([...this.inflight]);
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.standin?.close().catch(() => undefined);
    await this.client?.connection.close().catch(() => undefined);
    // Stop only what this demo started; a stack that was already running stays up.
    if (this.up && this.up.started.length > 0) {
      await stackDown({ only: this.up.started, log: (l) => say(`   ${l}`) });
    }
  }
}

/** Waits until the supervisor answers its `status` query (its first workflow task has run). */
async function firstStatus(
  handle: WorkflowHandle<typeof supervisorWorkflow>,
  timeoutMs: number,
): Promise<PipelineStatus> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await handle.query(statusQuery);
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`the supervisor did not answer its status query: ${oneLine(err)}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * Pauses the stream (its publisher flushes) and waits until the load child has run a batch that
 * found the subscription empty, bounded by `timeoutMs`; says what it did in one line.
 */
async function drainBeforeStop(
  supervisor: WorkflowHandle<typeof supervisorWorkflow>,
  loader: WorkflowHandle,
  timeoutMs: number,
): Promise<void> {
  await supervisor.signal(pauseSignal);
  const deadline = Date.now() + timeoutMs;
  let pausedAt: number | undefined;
  for (;;) {
    const st = await supervisor.query(statusQuery).catch(() => undefined);
    if (st?.state === 'paused' && pausedAt === undefined) pausedAt = Date.now();
    const ls = await loader.query(loadStatsQuery).catch(() => undefined);
    const after = ls?.lastBatchAt ? Date.parse(ls.lastBatchAt) : 0;
    if (pausedAt !== undefined && ls && after > pausedAt && ls.lastBatch?.pulled === 0) {
      say(`   stream paused and subscription drained: ${ls.rowsLoaded} rows loaded by this run`);
      return;
    }
    if (!ls || Date.now() > deadline) {
      say(`   the loader did not drain the subscription within ${timeoutMs / 1000} s; stopping anyway`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(res: Resources): Promise<void> {
  const t0 = Date.now();
  // Real Pub/Sub and BigQuery when the user points at a project with X credentials and no emulator;
  // otherwise (the default) the local emulators. Temporal is always the local dev server here.
  const u = process.env;
  const realGcp =
    !!(u.X_BEARER_TOKEN || u.X_BEARER_TOKEN_FILE) &&
    !!u.GCP_PROJECT_ID &&
    !u.PUBSUB_EMULATOR_HOST &&
    !u.BIGQUERY_EMULATOR_HOST;
  const only = realGcp ? ['temporal'] : undefined;
  say(
    realGcp
      ? `== real Pub/Sub and BigQuery in project ${u.GCP_PROJECT_ID}; local Temporal`
      : '== bringing up the local stack',
  );
  const up = await stackUp({ log: (l) => say(`   ${l}`), only });
  res.up = up;
  const stackVars = realGcp
    ? Object.fromEntries(Object.entries(up.env).filter(([k]) => k.startsWith('TEMPORAL_')))
    : up.env;
  const env: NodeJS.ProcessEnv = { ...DEMO_DEFAULTS, ...process.env, ...stackVars };
  Object.assign(process.env, stackVars);

  if (!env.X_BEARER_TOKEN && !env.X_BEARER_TOKEN_FILE && !env.X_API_BASE_URL) {
    const port = Number(env.X_STANDIN_PORT ?? 8787);
    // Post ids from the current time: a demo run again on the same tables loads new posts.
    res.standin = await startXStandin({
      port,
      rate: Number(env.DEMO_RATE ?? 20),
      seed: 42,
      idTimeMs: Date.now(),
      keepAliveMs: 5000,
    });
    env.X_API_BASE_URL = res.standin.url;
    // The stand-in accepts any token; this is not a credential.
    env.X_BEARER_TOKEN = 'local-standin';
    say(`== X API stand-in at ${res.standin.url} (no X credentials configured)`);
  } else if (env.X_API_BASE_URL) {
    say(`== using the X API at ${env.X_API_BASE_URL}`);
  }

  const config: AppConfig = loadConfig(env);
  await provision(config, createLogger({ level: 'warn', format: 'json' }));

  const processes: [string, string][] = [
    ['stream worker', 'src/workers/stream-worker.ts'],
    ['batch worker', 'src/workers/batch-worker.ts'],
    ['dashboard', 'src/dashboard/main.ts'],
  ];
  for (const [name, script] of processes) {
    const w = new WorkerProcess({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', join(ROOT, script)],
      cwd: ROOT,
      env,
      say,
    });
    w.start();
    res.workers.push(w);
    say(`   ${name} started (pid ${w.pid})`);
  }

  const client = await connectClient(config.temporal);
  res.client = client;
  const workflowId = supervisorWorkflowId(config.x.streamName);
  const startSupervisor = () =>
    client.workflow.start(supervisorWorkflow, {
      workflowId,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: config.x.streamName }],
      // A supervisor that is already running (an earlier demo) is reused, not duplicated.
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    });
  let handle = await startSupervisor();
  const first = await firstStatus(handle, 60_000);
  if (first.state === 'stopping' || first.state === 'stopped') {
    // An earlier demo stopped it and did not see it finish (its stack went down first): let it
    // finish on these workers, then start a new run instead of showing a stopped pipeline.
    say(`   the supervisor of an earlier run is ${first.state}; waiting for it to finish`);
    await Promise.race([handle.result().catch(() => undefined), new Promise((r) => setTimeout(r, 120_000))]);
    handle = await startSupervisor();
    await firstStatus(handle, 60_000);
  }

  const ui = `${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`;
  say('');
  say(`== pipeline running (${((Date.now() - t0) / 1000).toFixed(1)} s to start)`);
  say(`   Temporal Web UI  ${config.temporal.uiUrl}`);
  say(`   supervisor       ${ui}`);
  say(`   dashboard        http://${config.ports.healthHost}:${config.ports.dashboard}`);
  say(`   metrics          http://${config.ports.healthHost}:${config.ports.streamWorkerHealth}/metrics`);
  say('   Ctrl-C stops everything cleanly.');
  say('');

  const loadHandle = client.workflow.getHandle(loadWorkflowId(config.x.streamName));
  const rates = new RateWindow(60_000);
  const emulator = { peakMiB: 0, restarts: 0 };
  const watchEmulator = !realGcp && up.started.includes('bigquery');
  const tick = async () => {
    if (watchEmulator) {
      emulator.peakMiB = Math.max(emulator.peakMiB, rssMiB(bigQueryEmulatorPid()) ?? 0);
    }
    try {
      const st: PipelineStatus = await handle.query(statusQuery);
      let loaded = 0;
      let dead = 0;
      try {
        const ls = await client.workflow.getHandle(loadWorkflowId(config.x.streamName)).query(loadStatsQuery);
        loaded = ls.rowsLoaded;
        dead = ls.deadLetters;
      } catch {
        // the load child is starting
      }
      const r = rates.add(Date.now(), {
        received: st.progress.postsReceived,
        published: st.progress.postsPublished,
        loaded,
      });
      say(
        `[${new Date().toISOString().slice(11, 19)}] ${st.state.padEnd(8)} ` +
          `received ${st.progress.postsReceived} (${formatRate(r.received)}/s)  ` +
          `published ${st.progress.postsPublished} (${formatRate(r.published)}/s)  ` +
          `loaded ${loaded} (${formatRate(r.loaded)}/s)  dead letters ${dead}  ` +
          `reconnects ${st.progress.reconnects}  quality ${st.lastDataQuality?.status ?? 'pending'}`,
      );
    } catch (err) {
      say(`   (status unavailable: ${oneLine(err)})`);
    }
  };
  res.timers.push(setInterval(() => res.track(tick()), 5000));
  // A component of the stack that died (the BigQuery emulator's SQL engine can panic) is started
  // again on its own state, like a container restarted by its pod, and counted.
  res.timers.push(
    setInterval(() => {
      res.track(
        stackUp({ only, log: (l) => say(`   stack: ${l}`) })
          .then((again) => {
            if (again.started.includes('bigquery')) emulator.restarts++;
          })
          .catch((err: unknown) => say(`   stack: ${oneLine(err)}`)),
      );
    }, 30_000),
  );

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    for (const t of res.timers) clearInterval(t);
    res.timers = [];
    say('\n== stopping: draining the stream and the children');
    await Promise.all([...res.inflight]);
    try {
      // The Pub/Sub emulator keeps nothing on disk: what is still in the subscription when it stops
      // is gone (real Pub/Sub would keep it for the next run). So, on the emulator, pause the stream
      // first and let the loader drain the subscription, then stop.
      if (!realGcp && up.started.includes('pubsub')) await drainBeforeStop(handle, loadHandle, 120_000);
      await handle.signal(stopSignal);
      await Promise.race([handle.result(), new Promise((r) => setTimeout(r, 60_000))]);
    } catch (err) {
      say(`   stop: ${oneLine(err)}`);
    }
    const restarts = res.workers.map((w) => `${w.restarts}`).join('/');
    if (watchEmulator) {
      emulator.peakMiB = Math.max(emulator.peakMiB, rssMiB(bigQueryEmulatorPid()) ?? 0);
      say(
        `== BigQuery emulator: peak resident memory ${emulator.peakMiB.toFixed(0)} MiB, ` +
          `restarts ${emulator.restarts}; worker restarts (stream/batch/dashboard) ${restarts}`,
      );
    }
    await res.release();
    say('== stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

if (require.main === module) {
  const res = new Resources();
  // However the demo ends, none of its processes (each in its own group) outlives it.
  process.once('exit', () => {
    for (const w of res.workers) w.killNow();
  });
  const fail = async (err: unknown) => {
    process.stderr.write(`demo failed: ${oneLine(err)}\n`);
    await res.release().catch(() => undefined);
    process.exit(1);
  };
  // An error thrown from a callback (a client retry timer, a socket) is a failure like any other:
  // one line, and everything stopped, not a stack dump with the stack left running.
  process.on('uncaughtException', (err) => void fail(err));
  process.on('unhandledRejection', (err) => void fail(err));
  main(res).catch(fail);
}
