/**
 * `npm run demo`: the whole pipeline on this machine. Brings up the local stack (Temporal + Web UI,
 * Pub/Sub and BigQuery emulators), the X API stand-in (unless X credentials or X_API_BASE_URL are
 * set), the stream worker, the batch worker and the dashboard; starts the supervisor workflow; and
 * (with X_BEARER_TOKEN and GCP_PROJECT_ID set and no emulator host) uses the real Pub/Sub and BigQuery;
 * prints live progress until Ctrl-C, which stops the workflow (drain), the processes and the parts of
 * the stack it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { loadConfig, type AppConfig } from '../src/config';
import { loadWorkflowId, supervisorWorkflowId, type PipelineStatus } from '../src/domain/pipeline-status';
import { createLogger } from '../src/observability/logger';
import { provision } from '../src/workers/setup';
import { statusQuery, stopSignal } from '../src/workflows/messages';
import type { LoadStats } from '../src/workflows/load';
import { startXStandin, type XStandin } from './x-api-standin/server';
import { ROOT, stackDown, stackUp } from './stack/manager';

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Settings that make the demo lively; any of them can still be overridden from the environment. */
const DEMO_DEFAULTS: Record<string, string> = {
  LOAD_INTERVAL_MS: '10000',
  DQ_INTERVAL_MS: '60000',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'warn',
};

function startProcess(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
    // Its own process group: Ctrl-C reaches only the demo, which stops the workflow first (the
    // workers must still be running to drain) and then the workers.
    detached: true,
  });
  child.on('exit', (code, signal) => {
    if (!stopping) say(`!! ${name} exited (${signal ?? code}); see its log lines above`);
  });
  return child;
}

let stopping = false;

async function main(): Promise<void> {
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
  const up = await stackUp({ log: (l) => say(`   ${l}`), recycleBigQuery: true, only });
  const stackVars = realGcp
    ? Object.fromEntries(Object.entries(up.env).filter(([k]) => k.startsWith('TEMPORAL_')))
    : up.env;
  const env: NodeJS.ProcessEnv = { ...DEMO_DEFAULTS, ...process.env, ...stackVars };
  Object.assign(process.env, stackVars);

  let standin: XStandin | undefined;
  if (!env.X_BEARER_TOKEN && !env.X_BEARER_TOKEN_FILE && !env.X_API_BASE_URL) {
    const port = Number(env.X_STANDIN_PORT ?? 8787);
    standin = await startXStandin({ port, rate: Number(env.DEMO_RATE ?? 20), seed: 42, keepAliveMs: 5000 });
    env.X_API_BASE_URL = standin.url;
    // The stand-in accepts any token; this is not a credential.
    env.X_BEARER_TOKEN = 'local-standin';
    say(`== X API stand-in at ${standin.url} (no X credentials configured)`);
  } else if (env.X_API_BASE_URL) {
    say(`== using the X API at ${env.X_API_BASE_URL}`);
  }

  const config: AppConfig = loadConfig(env);
  await provision(config, createLogger({ level: 'warn', format: 'json' }));

  const children = [
    startProcess('stream worker', join(ROOT, 'src/workers/stream-worker.ts'), env),
    startProcess('batch worker', join(ROOT, 'src/workers/batch-worker.ts'), env),
    startProcess('dashboard', join(ROOT, 'src/dashboard/main.ts'), env),
  ];
  // They run in their own process groups: make sure none outlives the demo, however it ends.
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  const client = new Client({
    connection: await Connection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
  });
  const workflowId = supervisorWorkflowId(config.x.streamName);
  const handle = await client.workflow.start('supervisorWorkflow', {
    workflowId,
    taskQueue: config.temporal.streamTaskQueue,
    args: [{ streamName: config.x.streamName }],
    // A supervisor that is already running (an earlier demo) is reused, not duplicated.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });

  const ui = `${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`;
  say('');
  say(`== pipeline running (${((Date.now() - t0) / 1000).toFixed(1)} s to start)`);
  say(`   Temporal Web UI  ${config.temporal.uiUrl}`);
  say(`   supervisor       ${ui}`);
  say(`   dashboard        http://${config.ports.healthHost}:${config.ports.dashboard}`);
  say(`   metrics          http://${config.ports.healthHost}:${config.ports.streamWorkerHealth}/metrics`);
  say('   Ctrl-C stops everything cleanly.');
  say('');

  let last: { at: number; received: number; published: number; loaded: number } | undefined;
  const tick = async () => {
    try {
      const st: PipelineStatus = await handle.query(statusQuery);
      let loaded = 0;
      let dead = 0;
      try {
        const ls = await client.workflow
          .getHandle(loadWorkflowId(config.x.streamName))
          .query<LoadStats>('loadStats');
        loaded = ls.rowsLoaded;
        dead = ls.deadLetters;
      } catch {
        // the load child is starting
      }
      const now = Date.now();
      const rate = (a: number, b: number | undefined) =>
        last && b !== undefined ? ((a - b) / ((now - last.at) / 1000)).toFixed(1) : '-';
      say(
        `[${new Date().toISOString().slice(11, 19)}] ${st.state.padEnd(8)} ` +
          `received ${st.progress.postsReceived} (${rate(st.progress.postsReceived, last?.received)}/s)  ` +
          `published ${st.progress.postsPublished} (${rate(st.progress.postsPublished, last?.published)}/s)  ` +
          `loaded ${loaded} (${rate(loaded, last?.loaded)}/s)  dead letters ${dead}  ` +
          `reconnects ${st.progress.reconnects}  quality ${st.lastDataQuality?.status ?? 'pending'}`,
      );
      last = { at: now, received: st.progress.postsReceived, published: st.progress.postsPublished, loaded };
    } catch (err) {
      say(`   (status unavailable: ${(err as Error).message})`);
    }
  };
  const timer = setInterval(() => void tick(), 5000);
  // Keep the emulators alive for a long demo (see recycleBigQueryIfBloated).
  const watchdog = setInterval(() => {
    void stackUp({ recycleBigQuery: true, only, log: (l) => say(`   stack: ${l}`) }).catch((err: Error) =>
      say(`   stack: ${err.message}`),
    );
  }, 30_000);

  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    clearInterval(watchdog);
    say('\n== stopping: draining the stream and the children');
    try {
      await handle.signal(stopSignal);
      await Promise.race([handle.result(), new Promise((r) => setTimeout(r, 60_000))]);
    } catch (err) {
      say(`   stop: ${(err as Error).message}`);
    }
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    );
    await standin?.close();
    await client.connection.close();
    if (up.started.length > 0) {
      // Stop only what this demo started; a stack that was already running stays up.
      await stackDown({ only: up.started, log: (l) => say(`   ${l}`) });
    }
    say('== stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
