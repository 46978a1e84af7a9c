/**
 * Benchmark of the load stage (`npx tsx dev/bench/load.ts`): a backlog of BENCH_MESSAGES (default
 * 100,000) posts is published once to a topic with one subscription per batch size; each batch size
 * drains its own copy into its own dataset through the real load activity (pull → staging load →
 * insert-if-absent → load_runs → ack). Compared with the seed's design (one streaming insert per message,
 * measured on BENCH_BASELINE_SAMPLE rows) and with the ceiling of one bare load job of all rows.
 * Uses PUBSUB_EMULATOR_HOST / BIGQUERY_EMULATOR_HOST (the local stack by default). Prints JSON + a table.
 */
import { createLoadActivities } from '../../src/activities/bigquery';
import { createBigQueryClient } from '../../src/adapters/bigquery/client';
import { ensureTables } from '../../src/adapters/bigquery/provision';
import { createBigQueryLoadSink } from '../../src/adapters/bigquery/writer';
import { createPubSub } from '../../src/adapters/pubsub/client';
import { createBatchSubscriber } from '../../src/adapters/pubsub/subscriber';
import { loadConfig } from '../../src/config';
import { POSTS_TABLE, toPostRow } from '../../src/domain/bigquery-schema';
import { POST_SCHEMA_VERSION, type Post } from '../../src/domain/post';
import { createLogger } from '../../src/observability/logger';

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '5000,20000').split(',').map(Number);
const BASELINE_SAMPLE = Number(process.env.BENCH_BASELINE_SAMPLE ?? 2000);
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

async function main() {
  const base = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const logger = createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn', format: 'json' });
  const pubsub = createPubSub(base.gcp);
  const bq = createBigQueryClient(base.gcp);
  const topicName = `bench_${tag}`;
  const [topic] = await pubsub.createTopic(topicName);
  progress(`topic ${topicName}`);
  for (const b of BATCH_SIZES) {
    await topic.createSubscription(`${topicName}_b${b}`, { ackDeadlineSeconds: 60 });
  }

  // 1. The backlog.
  let t = Date.now();
  const pub = pubsub.topic(topicName, { batching: { maxMessages: 1000, maxMilliseconds: 20 } });
  const WINDOW = 5000;
  for (let i = 0; i < N; i += WINDOW) {
    const n = Math.min(WINDOW, N - i);
    await Promise.all(
      Array.from({ length: n }, (_, k) =>
        pub.publishMessage({
          data: Buffer.from(JSON.stringify(post(i + k))),
          attributes: { malformed: 'false' },
        }),
      ),
    );
  }
  const publishSeconds = (Date.now() - t) / 1000;
  progress(`published ${N} in ${publishSeconds}s`);

  // 2. The pipeline's load, per batch size.
  const runs: { batchSize: number; rows: number; seconds: number; rowsPerSecond: number; batches: number }[] =
    [];
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
  const meta = {
    messageId: 'm',
    publishTime: null,
    ingestedAt: new Date().toISOString(),
    loadRunId: 'baseline',
  };
  t = Date.now();
  for (let i = 0; i < BASELINE_SAMPLE; i++) await table.insert([toPostRow(post(i), meta)]);
  const baselineSeconds = (Date.now() - t) / 1000;
  const baseline = {
    rows: BASELINE_SAMPLE,
    seconds: baselineSeconds,
    rowsPerSecond: BASELINE_SAMPLE / baselineSeconds,
  };

  // 4. Ceiling: one bare load job of all N rows (no pull, no insert, no ack).
  const ceilTable = bq.dataset(baseGcp.dataset).table('ceiling');
  const ndjson =
    Array.from({ length: N }, (_, i) => JSON.stringify(toPostRow(post(i), meta))).join('\n') + '\n';
  t = Date.now();
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
  const ceilSeconds = (Date.now() - t) / 1000;
  const ceiling = { rows: N, seconds: ceilSeconds, rowsPerSecond: N / ceilSeconds };

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
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  const row = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(28)}${b.padStart(10)}${c.padStart(10)}${d.padStart(12)}\n`;
  let table2 = row('stage', 'rows', 'seconds', 'rows/s');
  for (const r of runs)
    table2 += row(
      `load, batch ${r.batchSize}`,
      String(r.rows),
      r.seconds.toFixed(1),
      r.rowsPerSecond.toFixed(0),
    );
  table2 += row(
    'baseline (insert per msg)',
    String(baseline.rows),
    baseline.seconds.toFixed(1),
    baseline.rowsPerSecond.toFixed(0),
  );
  table2 += row(
    'ceiling (bare load job)',
    String(ceiling.rows),
    ceiling.seconds.toFixed(1),
    ceiling.rowsPerSecond.toFixed(0),
  );
  table2 += `best load = ${report.speedupVsBaseline.toFixed(1)}x baseline, ${(report.fractionOfCeiling * 100).toFixed(0)}% of ceiling\n`;
  process.stdout.write(table2);

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
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
