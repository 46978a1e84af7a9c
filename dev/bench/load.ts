/**
 * Benchmark of the load stage (`npx tsx dev/bench/load.ts`), on the private bench stack
 * (`private-stack.ts`; started if it is not up) unless STACK_DIR is set or `BENCH_SHARED_STACK=1`.
 * BENCH_LOAD_SECTIONS (default `batch,lanes`) picks the sections:
 *
 * - `batch`: a backlog of BENCH_MESSAGES (default 100,000) posts is published once to a topic with one
 *   subscription per batch size; each batch size drains its own copy into its own dataset through the
 *   real load activity (pull → staging load → insert-if-absent → load_runs → ack). Compared with the
 *   seed's design (one streaming insert per message, measured on BENCH_BASELINE_SAMPLE rows) and with
 *   the ceiling of one bare load job of all rows.
 * - `lanes` ({@link runLaneBench}, also called by `npm run bench`): for each lane count in
 *   BENCH_LANE_COUNTS (default 1,2,4) a backlog of BENCH_LANE_MESSAGES (default 40,000) posts with
 *   their `lane` attributes on its own topic and lane subscriptions, drained by that many concurrent
 *   loaders (one per lane, as the load children would, fenced), against one bare load job of the
 *   same rows on the same emulator; then COUNT(*) / COUNT(DISTINCT id) of each dataset.
 *
 * Prints JSON + a table.
 */
import './private-stack';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { createLoadActivities, type LoadBatchResult } from '../../src/activities/bigquery';
import { createBigQueryClient } from '../../src/adapters/bigquery/client';
import { ensureTables } from '../../src/adapters/bigquery/provision';
import { createBigQueryLoadSink } from '../../src/adapters/bigquery/writer';
import { deadLetterSubscriptionName, ensurePubSubResources } from '../../src/adapters/pubsub/admin';
import { createPubSub } from '../../src/adapters/pubsub/client';
import { encodePost } from '../../src/adapters/pubsub/publisher';
import { createBatchSubscriber } from '../../src/adapters/pubsub/subscriber';
import { loadConfig, type AppConfig } from '../../src/config';
import { POSTS_TABLE, toPostRow } from '../../src/domain/bigquery-schema';
import { laneSubscription } from '../../src/domain/lanes';
import { POST_SCHEMA_VERSION, type Post } from '../../src/domain/post';
import { createLogger, type Logger } from '../../src/observability/logger';
import { stackUp } from '../stack/manager';

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '5000,20000').split(',').map(Number);
const BASELINE_SAMPLE = Number(process.env.BENCH_BASELINE_SAMPLE ?? 2000);
const SECTIONS = (process.env.BENCH_LOAD_SECTIONS ?? 'batch,lanes').split(',').map((x) => x.trim());
const tag = Date.now().toString(36);

function post(i: number): Post {
  const id = String(1_800_000_000_000_000_000n + BigInt(i));
  return {
    schema_version: POST_SCHEMA_VERSION,
    id,
    text: `benchmark post ${i} about #tesla and the stream`,
    created_at: new Date(Date.UTC(2026, 10, 25, 0, 0, i % 86400)).toISOString(),
    author: {
      id: String(1000 + (i % 5000)),
      username: `user${i % 5000}`,
      name: 'Bench',
      verified: false,
      followers_count: i % 1000,
    },
    lang: i % 3 === 0 ? 'de' : 'en',
    metrics: {
      retweet_count: 1,
      reply_count: 0,
      like_count: i % 50,
      quote_count: 0,
      bookmark_count: 0,
      impression_count: 10,
    },
    hashtags: ['tesla'],
    mentions: [],
    urls: [],
    referenced_posts: [],
    conversation_id: id,
    edit_history_ids: [id],
    possibly_sensitive: false,
    matching_rules: [{ id: '1', tag: 'tesla' }],
    received_at: new Date().toISOString(),
    raw: `{"data":{"id":"${id}"}}`,
  };
}

const progress = (m: string) => process.stderr.write(`[bench] ${m}\n`);

const RUN_META = {
  messageId: 'm',
  publishTime: null,
  ingestedAt: new Date().toISOString(),
  loadRunId: 'baseline',
};

/** Publishes `posts(i)` for i < n (windows of 5,000 in flight, batches of 1,000); returns seconds. */
async function publishBacklog(
  pubsub: PubSub,
  topicName: string,
  n: number,
  message: (i: number) => { data: Buffer; attributes: Record<string, string> },
): Promise<number> {
  const t = Date.now();
  const pub = pubsub.topic(topicName, { batching: { maxMessages: 1000, maxMilliseconds: 20 } });
  const WINDOW = 5000;
  for (let i = 0; i < n; i += WINDOW) {
    const k = Math.min(WINDOW, n - i);
    await Promise.all(Array.from({ length: k }, (_, j) => pub.publishMessage(message(i + j))));
  }
  return (Date.now() - t) / 1000;
}

/** The ceiling: one bare load job of `n` rows (no pull, no insert, no ack) into `dataset.ceiling`. */
async function bareLoadCeiling(bq: BigQuery, dataset: string, n: number) {
  const ceilTable = bq.dataset(dataset).table('ceiling');
  const ndjson =
    Array.from({ length: n }, (_, i) => JSON.stringify(toPostRow(post(i), RUN_META))).join('\n') + '\n';
  const t = Date.now();
  await new Promise<void>((resolve, reject) => {
    const ws = ceilTable.createWriteStream({
      sourceFormat: 'NEWLINE_DELIMITED_JSON',
      schema: { fields: POSTS_TABLE.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })) },
      writeDisposition: 'WRITE_TRUNCATE',
    } as never);
    ws.once('job', (job: { metadata?: { status?: { state?: string } }; promise: () => Promise<unknown> }) =>
      job.metadata?.status?.state === 'DONE' ? resolve() : job.promise().then(() => resolve(), reject),
    );
    ws.once('error', reject);
    ws.end(ndjson);
  });
  const seconds = (Date.now() - t) / 1000;
  return { rows: n, seconds, rowsPerSecond: n / seconds };
}

export interface LaneRun {
  lanes: number;
  /** Posts published for this lane count (each lands in exactly one lane). */
  expected: number;
  /** Rows the loaders reported inserted. */
  rowsLoaded: number;
  /** Per lane: the lane's posts (by `laneOf`) and the batches it ran. */
  perLane: { lane: number; rows: number; batches: number; seconds: number }[];
  /** From the first pull to the last batch done (the final empty pulls excluded). */
  seconds: number;
  rowsPerSecond: number;
  /** rowsPerSecond / the bare load-job ceiling of the same run. */
  ratioToCeiling: number;
  /** Batches that threw and were retried (next attempt, as Temporal would). */
  retries: number;
  check: { rows: number; distinctIds: number; expected: number; exactlyOnce: boolean };
}

export interface LaneBenchReport {
  messages: number;
  batchSize: number;
  publishSeconds: number[];
  /** One bare load job of `messages` rows on the same emulator, measured before the lanes. */
  ceiling: { rows: number; seconds: number; rowsPerSecond: number };
  /** The same, measured again after the lanes (the emulator's state changes during a run). */
  ceilingAfter: { rows: number; seconds: number; rowsPerSecond: number };
  runs: LaneRun[];
  target: { ratio: number; met: boolean };
}

/**
 * The load lanes (issue #13): for each lane count, its own backlog, lane subscriptions and dataset;
 * one loader per lane, concurrently, each calling the real `loadBatch` in a loop with its lane, the
 * lane count and a fence (in a `MockActivityEnvironment` whose workflow id is the lane's load child,
 * so each lane has its own fencing key and staging slots, as in production); lane 0 also pulls the
 * dead-letter subscription, as the batch worker's does. Throughput = rows over the time from the
 * start to the last non-empty batch; the ceiling is one bare load job of the same number of rows on
 * the same emulator, measured before and after. Uses the stack `process.env` points at.
 */
export async function runLaneBench(
  opts: {
    messages?: number;
    laneCounts?: number[];
    batchSize?: number;
    log?: (line: string) => void;
    /** Drop the bench's topics and datasets afterwards. @default true */
    cleanUp?: boolean;
  } = {},
): Promise<LaneBenchReport> {
  const log = opts.log ?? progress;
  const n = opts.messages ?? Number(process.env.BENCH_LANE_MESSAGES ?? 40_000);
  const laneCounts =
    opts.laneCounts ?? (process.env.BENCH_LANE_COUNTS ?? '1,2,4').split(',').map((x) => Number(x.trim()));
  const base: AppConfig = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const batchSize = opts.batchSize ?? Number(process.env.BENCH_LANE_BATCH_SIZE ?? base.load.batchSize);
  const logger = createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn', format: 'json' });
  const pubsub = createPubSub(base.gcp);
  const bq = createBigQueryClient(base.gcp);
  const runTag = `bench_lanes_${Date.now().toString(36)}`;
  const family = (lanes: number) => ({
    topic: `${runTag}_l${lanes}`,
    subscription: `${runTag}_l${lanes}_load`,
    deadLetterTopic: `${runTag}_l${lanes}_dead`,
    dataset: `${runTag}_l${lanes}`,
  });

  // 1. One backlog per lane count, each on its own topic with its lane subscriptions (the emulator
  //    ignores their filters, so every lane subscription gets every message; see domain/lanes.ts).
  const publishSeconds: number[] = [];
  for (const lanes of laneCounts) {
    const f = family(lanes);
    await ensurePubSubResources(pubsub, f, lanes);
    const s = await publishBacklog(pubsub, f.topic, n, (i) => {
      const m = encodePost(post(i), lanes);
      return { data: m.data, attributes: m.attributes as unknown as Record<string, string> };
    });
    publishSeconds.push(s);
    log(`lanes ${lanes}: published ${n} in ${s.toFixed(1)} s`);
  }

  const ceilingDataset = `${runTag}_ceiling`;
  await ensureTables(bq, { ...base.gcp, dataset: ceilingDataset });
  const ceiling = await bareLoadCeiling(bq, ceilingDataset, n);
  log(`ceiling: one bare load job of ${n} rows in ${ceiling.seconds.toFixed(1)} s`);

  // 2. Drain each lane count with that many concurrent loaders.
  const runs: LaneRun[] = [];
  for (const lanes of laneCounts) {
    const f = family(lanes);
    const gcp = { ...base.gcp, ...f };
    const sink = createBigQueryLoadSink({ bq, gcp, logger });
    const subscribers = Array.from({ length: lanes }, (_, lane) =>
      createBatchSubscriber({
        gcp,
        logger,
        subscription: laneSubscription(f.subscription, lane, lanes),
        lane: { lane, lanes },
        ...(lane === 0 ? { deadLetterSubscription: deadLetterSubscriptionName(f) } : {}),
      }),
    );
    const acts = createLoadActivities({ subscriber: (lane) => subscribers[lane], sink, logger });
    await acts.ensureTables();
    let retries = 0;
    const t0 = Date.now();
    const loader = async (lane: number) => {
      const workflowId = `${runTag}-load-${lanes}-${lane}`;
      let rows = 0;
      let batches = 0;
      let lastDone = t0;
      let fence = 0;
      let attempt = 1;
      for (;;) {
        // The workflow's fence base: larger for every batch of the lane (workflow time in ms).
        fence = Math.max(fence + 1, Date.now());
        const env = new MockActivityEnvironment({
          workflowExecution: { workflowId, runId: `${workflowId}-run` },
          activityId: `batch-${batches + 1}`,
          attempt,
        });
        let r: LoadBatchResult;
        try {
          r = await env.run(acts.loadBatch, { batchSize, waitMs: 3000, lane, lanes, fence });
        } catch (err) {
          if (attempt >= 5) throw err;
          retries++;
          attempt++;
          log(`lanes ${lanes}, lane ${lane}: batch failed (${(err as Error).message}); attempt ${attempt}`);
          continue;
        }
        attempt = 1;
        if (r.pulled === 0) break;
        rows += r.rowsLoaded;
        batches++;
        lastDone = Date.now();
        log(`lanes ${lanes}, lane ${lane}: pulled ${r.pulled}, loaded ${r.rowsLoaded} in ${r.durationMs} ms`);
      }
      return { lane, rows, batches, seconds: (lastDone - t0) / 1000 };
    };
    const perLane = await Promise.all(Array.from({ length: lanes }, (_, lane) => loader(lane)));
    const seconds = Math.max(...perLane.map((l) => l.seconds));
    const rowsLoaded = perLane.reduce((a, l) => a + l.rows, 0);
    for (const s of subscribers) await s.close();
    const [agg] = (
      await bq.query({
        query: `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \`${gcp.projectId}.${f.dataset}.${gcp.tables.posts}\``,
      })
    )[0] as { n: number; d: number }[];
    const check = {
      rows: Number(agg.n),
      distinctIds: Number(agg.d),
      expected: n,
      exactlyOnce: Number(agg.n) === n && Number(agg.d) === n,
    };
    const rowsPerSecond = rowsLoaded / seconds;
    runs.push({
      lanes,
      expected: n,
      rowsLoaded,
      perLane,
      seconds,
      rowsPerSecond,
      ratioToCeiling: rowsPerSecond / ceiling.rowsPerSecond,
      retries,
      check,
    });
    log(
      `lanes ${lanes}: ${rowsLoaded} rows in ${seconds.toFixed(1)} s = ${rowsPerSecond.toFixed(0)} rows/s ` +
        `(${(rowsPerSecond / ceiling.rowsPerSecond).toFixed(2)} of the ceiling); ` +
        `COUNT(*) ${check.rows}, DISTINCT ${check.distinctIds}, expected ${n}`,
    );
  }

  const ceilingAfter = await bareLoadCeiling(bq, ceilingDataset, n);
  log(`ceiling again: ${ceilingAfter.rowsPerSecond.toFixed(0)} rows/s`);

  if (opts.cleanUp !== false) {
    for (const lanes of laneCounts) {
      const f = family(lanes);
      await bq
        .dataset(f.dataset)
        .delete({ force: true })
        .catch(() => undefined);
      for (const name of [...laneSubs(f.subscription, lanes), deadLetterSubscriptionName(f)])
        await pubsub
          .subscription(name)
          .delete()
          .catch(() => undefined);
      for (const t of [f.topic, f.deadLetterTopic])
        await pubsub
          .topic(t)
          .delete()
          .catch(() => undefined);
    }
    await bq
      .dataset(ceilingDataset)
      .delete({ force: true })
      .catch(() => undefined);
  }
  await pubsub.close();
  const best = Math.max(...runs.map((r) => r.ratioToCeiling));
  return {
    messages: n,
    batchSize,
    publishSeconds,
    ceiling,
    ceilingAfter,
    runs,
    target: { ratio: 0.8, met: best >= 0.8 },
  };
}

const laneSubs = (subscription: string, lanes: number) =>
  Array.from({ length: lanes }, (_, lane) => laneSubscription(subscription, lane, lanes));

/** The lanes section as markdown (BENCHMARKS.md's table shape). */
export function laneMarkdown(r: LaneBenchReport): string {
  const lines = [
    `Load lanes: ${r.messages} posts per lane count, batch ${r.batchSize}; bare load-job ceiling ` +
      `${r.ceiling.rowsPerSecond.toFixed(0)} rows/s before, ${r.ceilingAfter.rowsPerSecond.toFixed(0)} after`,
    '',
    '| lanes | rows/s | × ceiling | seconds | batches | COUNT(*) / DISTINCT id / expected | exactly once |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const x of r.runs)
    lines.push(
      `| ${x.lanes} | ${x.rowsPerSecond.toFixed(0)} | ${x.ratioToCeiling.toFixed(2)} | ${x.seconds.toFixed(1)} | ` +
        `${x.perLane.map((l) => l.batches).join(' + ')} | ${x.check.rows} / ${x.check.distinctIds} / ${x.check.expected} | ` +
        `${x.check.exactlyOnce ? 'yes' : 'NO'} |`,
    );
  lines.push('', `Target load ≥ 0.8 of the ceiling: ${r.target.met ? 'met' : 'missed'}`);
  return lines.join('\n');
}

async function runBatchSizes(base: AppConfig, logger: Logger) {
  const pubsub = createPubSub(base.gcp);
  const bq = createBigQueryClient(base.gcp);
  const topicName = `bench_${tag}`;
  const [topic] = await pubsub.createTopic(topicName);
  progress(`topic ${topicName}`);
  for (const b of BATCH_SIZES) {
    await topic.createSubscription(`${topicName}_b${b}`, { ackDeadlineSeconds: 60 });
  }

  // 1. The backlog.
  const publishSeconds = await publishBacklog(pubsub, topicName, N, (i) => ({
    data: Buffer.from(JSON.stringify(post(i))),
    attributes: { malformed: 'false' },
  }));
  progress(`published ${N} in ${publishSeconds}s`);

  // 2. The pipeline's load, per batch size.
  const runs: { batchSize: number; rows: number; seconds: number; rowsPerSecond: number; batches: number }[] =
    [];
  let t: number;
  for (const b of BATCH_SIZES) {
    const gcp = { ...base.gcp, dataset: `bench_${tag}_b${b}`, subscription: `${topicName}_b${b}` };
    const subscriber = createBatchSubscriber({ gcp, logger });
    const acts = createLoadActivities({
      subscriber,
      sink: createBigQueryLoadSink({ bq, gcp, logger }),
      logger,
    });
    await acts.ensureTables();
    t = Date.now();
    let rows = 0;
    let batches = 0;
    for (;;) {
      const r = await acts.loadBatch({ batchSize: b, waitMs: 3000 });
      if (r.pulled === 0) break;
      rows += r.rowsLoaded;
      progress(`batch ${b}: pulled ${r.pulled} loaded ${r.rowsLoaded} in ${r.durationMs} ms`);
      batches++;
    }
    const seconds = (Date.now() - t - 3000) / 1000; // minus the final empty pull's wait
    runs.push({ batchSize: b, rows, seconds, rowsPerSecond: rows / seconds, batches });
    await subscriber.close();
  }

  // 3. Baseline: the seed's one streaming insert per message (on a sample).
  const baseGcp = { ...base.gcp, dataset: `bench_${tag}_baseline` };
  await ensureTables(bq, baseGcp);
  const table = bq.dataset(baseGcp.dataset).table(baseGcp.tables.posts);
  t = Date.now();
  for (let i = 0; i < BASELINE_SAMPLE; i++) await table.insert([toPostRow(post(i), RUN_META)]);
  const baselineSeconds = (Date.now() - t) / 1000;
  const baseline = {
    rows: BASELINE_SAMPLE,
    seconds: baselineSeconds,
    rowsPerSecond: BASELINE_SAMPLE / baselineSeconds,
  };

  // 4. Ceiling: one bare load job of all N rows (no pull, no insert, no ack).
  const ceiling = await bareLoadCeiling(bq, baseGcp.dataset, N);

  const best = Math.max(...runs.map((r) => r.rowsPerSecond));
  const report = {
    messages: N,
    publishSeconds,
    runs,
    baseline,
    ceiling,
    speedupVsBaseline: best / baseline.rowsPerSecond,
    fractionOfCeiling: best / ceiling.rowsPerSecond,
  };

  for (const b of BATCH_SIZES)
    await bq
      .dataset(`bench_${tag}_b${b}`)
      .delete({ force: true })
      .catch(() => undefined);
  await bq
    .dataset(baseGcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
  await pubsub
    .topic(topicName)
    .delete()
    .catch(() => undefined);
  await pubsub.close();
  return report;
}

function batchTable(report: Awaited<ReturnType<typeof runBatchSizes>>): string {
  const { runs, baseline, ceiling } = report;
  const row = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(28)}${b.padStart(10)}${c.padStart(10)}${d.padStart(12)}\n`;
  let out = row('stage', 'rows', 'seconds', 'rows/s');
  for (const r of runs)
    out += row(
      `load, batch ${r.batchSize}`,
      String(r.rows),
      r.seconds.toFixed(1),
      r.rowsPerSecond.toFixed(0),
    );
  out += row(
    'baseline (insert per msg)',
    String(baseline.rows),
    baseline.seconds.toFixed(1),
    baseline.rowsPerSecond.toFixed(0),
  );
  out += row(
    'ceiling (bare load job)',
    String(ceiling.rows),
    ceiling.seconds.toFixed(1),
    ceiling.rowsPerSecond.toFixed(0),
  );
  out += `best load = ${report.speedupVsBaseline.toFixed(1)}x baseline, ${(report.fractionOfCeiling * 100).toFixed(0)}% of ceiling\n`;
  return out;
}

async function main() {
  const up = await stackUp({ log: progress });
  Object.assign(process.env, up.env);
  const base = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const logger = createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn', format: 'json' });
  // The batch section's JSON stays at the top level: `npm run bench` parses it from the first line.
  const batch = SECTIONS.includes('batch') ? await runBatchSizes(base, logger) : undefined;
  const lanes = SECTIONS.includes('lanes') ? await runLaneBench({ log: progress }) : undefined;
  process.stdout.write(JSON.stringify({ ...batch, lanes }, null, 2) + '\n');
  if (batch) process.stdout.write(batchTable(batch));
  if (lanes) process.stdout.write(`${laneMarkdown(lanes)}\n`);
  process.exit(lanes && lanes.runs.some((r) => !r.check.exactlyOnce) ? 1 : 0);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
