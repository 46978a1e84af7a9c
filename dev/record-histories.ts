/**
 * Records supervisor workflow histories for the determinism replay test
 * (`test/integration/replay/replay.test.ts`): runs scenarios on the local stack (`npm run stack:up`)
 * with the real stream worker composition (X stand-in in process, Pub/Sub emulator) and writes each
 * run's history to `test/fixtures/histories/<scenario>[-run<n>].json` in the canonical JSON form of
 * `temporal workflow show --output json` (the Web UI's download is the same), so a history taken
 * from a production workflow can be added beside them with that one command.
 *
 * Why the CLI and not `historyToJSON(await handle.fetchHistory())`: in this dependency tree
 * `@temporalio/common` and `@temporalio/proto` each get their own copy of protobufjs 8 (the root
 * holds google-gax's protobufjs 7), and the SDK's `historyToJSON`/`historyFromJSON` then fail with
 * "type must be a Type" (an `instanceof` across the two copies).
 *
 *   npx tsx dev/record-histories.ts            # all scenarios
 *   npx tsx dev/record-histories.ts lifecycle  # only the named ones
 *
 * Re-record when a workflow change is *meant* to be incompatible (and version it for running
 * workflows); never to make a failing replay pass.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { connectClient, connectWorker } from '../src/adapters/temporal/connection';
import { ensurePubSubResources } from '../src/adapters/pubsub/admin';
import { createPubSub } from '../src/adapters/pubsub/client';
import { loadConfig, type AppConfig } from '../src/config';
import { loadWorkflowId, qualityWorkflowId, type PipelineStatus } from '../src/domain/pipeline-status';
import { createLogger } from '../src/observability/logger';
import {
  pauseSignal,
  resumeSignal,
  setBudgetUpdate,
  setRulesUpdate,
  statusQuery,
  stopSignal,
} from '../src/workflows/messages';
import { supervisorWorkflow } from '../src/workflows/supervisor';
import { buildStreamActivities } from '../src/workers/stream-worker';
import { formatHistory } from './history-paths';
import { startXStandin, type XStandin } from './x-api-standin/server';
import { stackAddresses, stackEnv } from './stack/manager';

const execFileP = promisify(execFile);
const REPO_ROOT = resolve(__dirname, '..');
const OUT_DIR = join(REPO_ROOT, 'test/fixtures/histories');
const logger = createLogger({ level: 'warn', format: 'json' });

type Supervisor = WorkflowHandle<typeof supervisorWorkflow>;

interface Ctx {
  client: Client;
  config: AppConfig;
  standin: XStandin;
  name: string;
  workflowId: string;
  /** The Temporal CLI. */
  cli: string;
  /** Starts a stream worker for this scenario; returns its stop function. */
  startWorker(): Promise<() => Promise<void>>;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function until<T>(probe: () => Promise<T>, done: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  let last: T | undefined;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch {
      // e.g. a query before the first workflow task: try again
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
}

const status = (h: Supervisor): Promise<PipelineStatus> => h.query(statusQuery);

function start(ctx: Ctx, input: Partial<Parameters<typeof supervisorWorkflow>[0]> = {}): Promise<Supervisor> {
  return ctx.client.workflow.start(supervisorWorkflow, {
    workflowId: ctx.workflowId,
    taskQueue: ctx.config.temporal.streamTaskQueue,
    args: [{ streamName: ctx.name, children: { load: false, quality: false }, ...input }],
  });
}

/** start → progress → pause → resume → setRules (accepted, rejected) → stop. */
async function lifecycle(ctx: Ctx): Promise<Supervisor> {
  const h = await start(ctx);
  const first = await until(
    () => status(h),
    (s) => s.progress.postsPublished >= 10,
    'progress',
  );
  await h.signal(pauseSignal);
  await until(
    () => status(h),
    (s) => s.state === 'paused',
    'paused',
  );
  await h.signal(resumeSignal);
  await until(
    () => status(h),
    (s) => s.state === 'running' && s.progress.postsPublished > first.progress.postsPublished + 10,
    'resumed',
  );
  await h.executeUpdate(setRulesUpdate, {
    args: [
      [
        { value: 'tesla', tag: 'tesla' },
        { value: 'spacex', tag: 'space' },
      ],
    ],
  });
  await h.executeUpdate(setRulesUpdate, { args: [[{ value: '(tesla', tag: 'bad' }]] }).then(
    () => {
      throw new Error('an invalid rule was accepted');
    },
    () => undefined,
  );
  await until(
    () => status(h),
    (s) => s.progress.postsPublished > 40,
    'more progress',
  );
  await h.signal(stopSignal);
  await h.result();
  return h;
}

/** A rule X rejects at start: paused with the reason; fixed with setRules; resumed; stopped. */
async function badRulesThenFixed(ctx: Ctx): Promise<Supervisor> {
  const h = await start(ctx, { rules: [{ value: '(tesla', tag: 'bad' }] });
  await until(
    () => status(h),
    (s) => s.state === 'paused' && s.lastError !== undefined,
    'paused on bad rule',
  );
  await h.executeUpdate(setRulesUpdate, { args: [[{ value: 'tesla', tag: 'tesla' }]] });
  await h.signal(resumeSignal);
  await until(
    () => status(h),
    (s) => s.state === 'running' && s.progress.postsPublished >= 10,
    'running',
  );
  await h.signal(stopSignal);
  await h.result();
  return h;
}

/** Started paused, resumed, then continue-as-new (small maxHistoryEvents) carrying state; stop. */
async function continueAsNew(ctx: Ctx): Promise<Supervisor> {
  const h = await start(ctx, { startPaused: true, maxHistoryEvents: 60 });
  await until(
    () => status(h),
    (s) => s.state === 'paused',
    'paused',
  );
  await h.signal(resumeSignal);
  await until(
    () => status(h),
    (s) => s.generation >= 2 && s.state === 'running' && s.progress.postsPublished > 0,
    'two continue-as-new',
  );
  await h.signal(stopSignal);
  await ctx.client.workflow.getHandle(ctx.workflowId).result();
  return h;
}

/** The stream worker stops mid-stream (graceful shutdown); a new worker's retried attempt resumes. */
async function workerRestart(ctx: Ctx, stopFirstWorker: () => Promise<void>): Promise<Supervisor> {
  const h = await start(ctx);
  const before = await until(
    () => status(h),
    (s) => s.progress.postsPublished >= 10,
    'progress',
  );
  await stopFirstWorker();
  const stopSecond = await ctx.startWorker();
  try {
    await until(
      () => status(h),
      (s) => s.state === 'running' && s.progress.postsPublished > before.progress.postsPublished + 20,
      'resumed on the new worker',
    );
    await h.signal(stopSignal);
    await h.result();
  } finally {
    await stopSecond();
  }
  return h;
}

/**
 * Gap fill and the read budget: a worker stops and another takes over (a worker-restart gap the
 * gap-fill child fills by search), then a budget just above what was read holds the stream as
 * budget-exhausted (a warning notice, a hold timer), `setBudget` lifts it, and `stop` ends the run.
 */
async function gapFillBudget(ctx: Ctx, stopFirstWorker: () => Promise<void>): Promise<Supervisor> {
  const h = await start(ctx, { children: { load: false, quality: false } });
  await until(
    () => status(h),
    (s) => s.progress.postsPublished >= 10,
    'progress',
  );
  await stopFirstWorker();
  const stopSecond = await ctx.startWorker();
  try {
    const filled = await until(
      () => status(h),
      (s) => (s.gaps?.counts.filled ?? 0) >= 1,
      'a filled gap',
    );
    await h.executeUpdate(setBudgetUpdate, { args: [{ monthlyPosts: filled.budget!.monthPosts + 20 }] });
    await until(
      () => status(h),
      (s) => s.state === 'budget-exhausted',
      'the budget hold',
    );
    await h.executeUpdate(setBudgetUpdate, { args: [{ monthlyPosts: null }] });
    await until(
      () => status(h),
      (s) => s.state === 'running',
      'running again',
    );
    await h.signal(stopSignal);
    await h.result();
  } finally {
    await stopSecond();
  }
  return h;
}

/**
 * Children enabled, with no batch worker polling: the children start (server side) and stay pending.
 * The quality child is terminated and restarted by the supervisor; on stop, the load child is
 * signalled `stop` and the quality child cancelled; the recorder then terminates both (no batch
 * worker will ever close them) so the supervisor finishes.
 */
async function children(ctx: Ctx): Promise<Supervisor> {
  const h = await start(ctx, { children: { load: true, quality: true } });
  const quality = ctx.client.workflow.getHandle(qualityWorkflowId(ctx.name));
  const load = ctx.client.workflow.getHandle(loadWorkflowId(ctx.name));
  await until(
    () => status(h),
    (s) =>
      s.children.load.state === 'running' &&
      s.children.quality.state === 'running' &&
      s.progress.postsPublished >= 5,
    'children running',
  );
  await quality.terminate('record-histories: a failed child');
  await until(
    () => status(h),
    (s) => s.children.quality.restarts === 1 && s.children.quality.state === 'running',
    'quality child restarted',
  );
  await h.signal(stopSignal);
  await until(
    () => status(h),
    (s) => s.state === 'stopping',
    'stopping',
  );
  await load.terminate('record-histories: no batch worker');
  await quality.terminate('record-histories: no batch worker');
  await h.result();
  return h;
}

/** Two load lanes: a load child per lane; lane 1's child fails and is restarted under its own id. */
async function loadLanes(ctx: Ctx): Promise<Supervisor> {
  const h = await start(ctx, { children: { load: true, quality: false } });
  await until(
    () => status(h),
    (s) =>
      s.children.load.state === 'running' &&
      s.children.loadLanes?.[0]?.state === 'running' &&
      s.progress.postsPublished >= 5,
    'lane children running',
  );
  await ctx.client.workflow
    .getHandle(loadWorkflowId(ctx.name, 1, 2))
    .terminate('record-histories: a failed lane child');
  await until(
    () => status(h),
    (s) => s.children.loadLanes?.[0]?.restarts === 1 && s.children.loadLanes[0].state === 'running',
    'lane 1 child restarted',
  );
  await h.signal(stopSignal);
  await until(
    () => status(h),
    (s) => s.state === 'stopping',
    'stopping',
  );
  for (const lane of [0, 1]) {
    await ctx.client.workflow
      .getHandle(loadWorkflowId(ctx.name, lane, 2))
      .terminate('record-histories: no batch worker')
      .catch(() => undefined);
  }
  await h.result();
  return h;
}

async function writeHistories(ctx: Ctx, scenario: string): Promise<void> {
  // Every run of the chain (continue-as-new starts a new run under the same workflow id).
  const runs: string[] = [];
  for await (const w of ctx.client.workflow.list({ query: `WorkflowId = '${ctx.workflowId}'` }))
    runs.push(w.runId);
  const ordered = await Promise.all(
    runs.map(async (runId) => {
      const d = await ctx.client.workflow.getHandle(ctx.workflowId, runId).describe();
      return { runId, startTime: d.startTime.getTime() };
    }),
  );
  ordered.sort((a, b) => a.startTime - b.startTime);
  for (const [i, { runId }] of ordered.entries()) {
    const file = join(OUT_DIR, ordered.length === 1 ? `${scenario}.json` : `${scenario}-run${i + 1}.json`);
    const { stdout } = await execFileP(
      ctx.cli,
      [
        'workflow',
        'show',
        '--workflow-id',
        ctx.workflowId,
        '--run-id',
        runId,
        '--output',
        'json',
        '--address',
        ctx.config.temporal.address,
        '--namespace',
        ctx.config.temporal.namespace,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const history = JSON.parse(stdout) as { events: unknown[] };
    // No paths of this machine (stack traces name the checkout); formatted as `prettier --check` expects.
    writeFileSync(file, await formatHistory(history, file, [REPO_ROOT, homedir()]));
    log(`  wrote ${file} (${history.events.length} events)`);
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  // The stack's addresses (and METADATA_SERVER_DETECTION=none for the Google clients).
  Object.assign(process.env, stackEnv(stackAddresses()));
  const env = { ...process.env };
  const base = loadConfig({ ...env, LOG_LEVEL: 'warn' });
  const client = await connectClient(base.temporal);
  const native = await connectWorker(base.temporal);
  const pubsub = createPubSub(base.gcp);
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../src/workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  mkdirSync(OUT_DIR, { recursive: true });

  const scenarios: Record<string, (ctx: Ctx, stopWorker: () => Promise<void>) => Promise<Supervisor>> = {
    lifecycle,
    'bad-rules-then-fixed': badRulesThenFixed,
    'continue-as-new': continueAsNew,
    'worker-restart': workerRestart,
    children,
    'gap-fill-budget': gapFillBudget,
    'load-lanes': loadLanes,
  };
  /** Settings a scenario needs beyond the common ones. */
  const scenarioEnv: Record<string, Record<string, string>> = {
    'gap-fill-budget': { X_GAP_MARGIN_SECONDS: '1' },
    'load-lanes': { LOAD_LANES: '2' },
  };
  try {
    for (const [scenario, run] of Object.entries(scenarios)) {
      if (only.length > 0 && !only.includes(scenario)) continue;
      log(`recording ${scenario}`);
      const standin = await startXStandin({ rate: 40, seed: 7, keepAliveMs: 1000, rules: [] });
      const name = `rec_${scenario.replace(/-/g, '_')}_${Date.now().toString(36)}`;
      const config = loadConfig({
        ...env,
        LOG_LEVEL: 'warn',
        X_API_BASE_URL: standin.url,
        X_BEARER_TOKEN: 'test-token',
        X_RULES: 'tesla#tesla',
        PUBSUB_TOPIC: `${name}-posts`,
        PUBSUB_SUBSCRIPTION: `${name}-sub`,
        PUBSUB_DEAD_LETTER_TOPIC: `${name}-dlq`,
        TEMPORAL_STREAM_TASK_QUEUE: `${name}-stream`,
        TEMPORAL_BATCH_TASK_QUEUE: `${name}-batch`,
        HEARTBEAT_INTERVAL_MS: '500',
        PROGRESS_REPORT_INTERVAL_MS: '500',
        PUBLISH_MAX_DELAY_MS: '10',
        X_STALL_TIMEOUT_MS: '3000',
        // Gap fill is on in every scenario recorded since it exists; its own scenario tunes it.
        ...scenarioEnv[scenario],
      });
      await ensurePubSubResources(pubsub, config.gcp, config.load.lanes);
      const startWorker = async (): Promise<() => Promise<void>> => {
        const shutdown = new AbortController();
        const built = buildStreamActivities(config, logger, { client, shutdownSignal: shutdown.signal });
        const worker = await Worker.create({
          connection: native,
          namespace: config.temporal.namespace,
          taskQueue: config.temporal.streamTaskQueue,
          workflowBundle: bundle,
          activities: built.activities,
        });
        const running = worker.run();
        return async () => {
          shutdown.abort();
          worker.shutdown();
          await running;
          await built.close();
        };
      };
      const ctx: Ctx = {
        client,
        config,
        standin,
        name,
        workflowId: `x-ingest-${name}`,
        cli: env.TEMPORAL_CLI_PATH ?? 'temporal',
        startWorker,
      };
      const stopWorker = await startWorker();
      let stopped = false;
      const stopOnce = async () => {
        if (stopped) return;
        stopped = true;
        await stopWorker();
      };
      try {
        await run(ctx, stopOnce);
      } finally {
        await stopOnce();
        await standin.close();
      }
      await writeHistories(ctx, scenario);
    }
  } finally {
    await native.close();
    await client.connection.close();
    await pubsub.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `record-histories failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
