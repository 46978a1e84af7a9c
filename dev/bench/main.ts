/**
 * `npm run bench [-- --rates 100,1000,5700,max --duration 20 --drain-timeout 180]`
 *
 * End-to-end benchmark of the whole local pipeline (X stand-in → stream worker → Pub/Sub emulator →
 * load child → BigQuery emulator) on a private stack (`private-stack.ts`; `BENCH_SHARED_STACK=1` uses
 * the default one). Per offered rate, for a fixed duration: posts/s delivered by the stand-in,
 * published, loaded; latency from `received_at` to the load batch's `finished_at` (p50/p95/p99);
 * worker and emulator peak RSS and CPU; Temporal history events per 10,000 posts; the bottleneck;
 * and zero loss / zero duplicates (stand-in ledger vs distinct ids in `posts`). In the same run: the
 * seed's design (one publish + one single-row insert per post) on a sample, the bare bulk-publish
 * ceiling, and the load stage's own benchmark (`dev/bench/load.ts`: batch load, per-message insert
 * baseline, bare load-job ceiling) on a smaller backlog, and its load lanes (`runLaneBench`: 1, 2 and 4
 * concurrent lanes against the bare load-job ceiling, exactly-once checked). The workers run from the
 * production build (`npm run build` output, built first when stale; `BENCH_BUILD=0` runs them under
 * tsx), and the report gives the batch worker's peak RSS at 5,700 posts/s against 512 MB. First,
 * before the stack starts: the stream reader beside its peers (`dev/bench/reader-peers.ts`, no stack
 * needed). Writes artifacts/bench/<timestamp>.json and prints a markdown table. Not run in CI
 * (minutes, and it measures the machine).
 */
import './private-stack';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createPubSub } from '../../src/adapters/pubsub/client';
import { toPostRow } from '../../src/domain/bigquery-schema';
import { normalizeStreamLine } from '../../src/domain/normalize';
import type { Post } from '../../src/domain/post';
import { Corpus } from '../x-api-standin/corpus';
import { compileRule } from '../x-api-standin/rule-engine';
import { ROOT, recycleBigQueryIfBloated, stackDown, stackUp } from '../stack/manager';
import {
  percentiles,
  sleep,
  stackPid,
  startPipeline,
  startSampler,
  verify,
  waitUntil,
  type Pipeline,
  type ProcStats,
} from './pipeline';
import { markdown as readerPeersMarkdown, runReaderPeers } from './reader-peers';
import { laneMarkdown, runLaneBench, type LaneBenchReport } from './load';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: process.env.BENCH_RATES ?? '100,1000,5700,max' },
    duration: { type: 'string', default: process.env.BENCH_DURATION_S ?? '20' },
    'max-rate': { type: 'string', default: process.env.BENCH_MAX_RATE ?? '20000' },
    'drain-timeout': { type: 'string', default: process.env.BENCH_DRAIN_TIMEOUT_S ?? '180' },
    'baseline-sample': { type: 'string', default: process.env.BENCH_BASELINE_SAMPLE ?? '300' },
    'ceiling-messages': { type: 'string', default: process.env.BENCH_CEILING_MESSAGES ?? '20000' },
    'load-interval': { type: 'string', default: process.env.LOAD_INTERVAL_MS ?? '10000' },
    'skip-load-stage': { type: 'boolean', default: false },
    'skip-lanes': { type: 'boolean', default: false },
    'keep-stack': { type: 'boolean', default: false },
  },
});
const DURATION_S = Number(values.duration);
const DRAIN_S = Number(values['drain-timeout']);
const LOAD_INTERVAL_MS = Number(values['load-interval']);
const PROGRESS_INTERVAL_MS = Number(process.env.PROGRESS_REPORT_INTERVAL_MS ?? 5000);
const rates = values.rates.split(',').map((r) => r.trim());
const say = (l: string) => process.stderr.write(`[bench] ${l}\n`);
/** Workers from the production build unless BENCH_BUILD=0 (then under tsx, as in development). */
const PRODUCTION = process.env.BENCH_BUILD !== '0';
/** Issue #13: the batch worker's peak RSS at 5,700 posts/s offered, in the production build. */
const RSS_TARGET_MB = 512;
const RSS_RATE = 5700;

interface StageResult {
  label: string;
  offeredPerSec: number;
  durationS: number;
  delivered: number;
  deliveredPerSec: number;
  published: number;
  publishedPerSec: number;
  loaded: number;
  loadedPerSec: number;
  /** Seconds from the end of the offered load until everything delivered was loaded. */
  drainS: number | null;
  drained: boolean;
  latencyMs: Record<string, number>;
  procs: Record<string, ProcStats>;
  historyEvents: { supervisor: number; load: number; per10kPosts: number };
  check: Awaited<ReturnType<typeof verify>>;
  bottleneck: string;
}

/** A stage that did not drain has posts still on their way, not lost: say which it is. */
function lostCell(s: StageResult): string {
  return s.drained || s.check.lost === 0
    ? String(s.check.lost)
    : `${s.check.lost} not loaded yet (drain timed out)`;
}

function samplePosts(n: number): Post[] {
  const corpus = new Corpus(7);
  const rule = compileRule('tesla');
  const rules = [{ id: '1', tag: 'tesla', seeds: rule.seeds, match: rule.match }];
  const out: Post[] = [];
  for (let i = 0; out.length < n && i < n * 10; i++) {
    const g = corpus.next(rules, Date.now());
    if (!g) continue;
    const norm = normalizeStreamLine(g.line, new Date().toISOString());
    if (norm.kind === 'post') out.push(norm.post);
  }
  return out;
}

function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A check that could not be made: every figure NaN, reported as not verified. */
function unverified(ledger: string[]): Awaited<ReturnType<typeof verify>> {
  return {
    ledgerPosts: ledger.length,
    ledgerDistinct: new Set(ledger).size,
    rows: NaN,
    distinctRows: NaN,
    lost: NaN,
    duplicates: NaN,
    extra: NaN,
    malformedWritten: 0,
    malformedDeadLetters: NaN,
    lostSample: [],
  };
}

async function runStage(p: Pipeline, label: string, offered: number): Promise<StageResult> {
  const name = `bench-${label}-${Date.now().toString(36)}`;
  p.standin.setRate(0);
  await sleep(500);
  p.standin.resetLedger();
  await p.startSupervisor(name);
  const connected = await waitUntil(async () => (await p.status(name))?.progress.connected === true, 180_000);
  if (!connected) throw new Error(`stage ${label}: the stream did not connect within 180 s`);
  say(`stage ${label}: ${offered} posts/s offered for ${DURATION_S} s`);
  const sampler = startSampler(() => ({
    'stream worker': p.workers.stream?.pid,
    'batch worker': p.workers.batch?.pid,
    'bench (stand-in)': process.pid,
    'bigquery emulator': stackPid('bigquery'),
    'pubsub emulator': stackPid('pubsub'),
    'temporal server': stackPid('temporal'),
  }));
  const t0 = Date.now();
  const sinceIso = new Date(t0 - 2000).toISOString();
  p.standin.setRate(offered);
  await sleep(DURATION_S * 1000);
  p.standin.setRate(0);
  const t1 = Date.now();
  // A reader slower than the offer leaves posts in the stand-in's socket buffer; they are still
  // delivered after the offer stops, and enter the ledger only when flushed. Snapshotting the ledger
  // before that counted them as never delivered (and then as "extra" rows in BigQuery).
  const bufferedAtStop = p.standin.stats().bufferedBytes;
  await waitUntil(async () => p.standin.stats().bufferedBytes === 0, DRAIN_S * 1000, 100);
  const tFlushed = Date.now();
  await sleep(300); // the last write callbacks
  if (bufferedAtStop > 0)
    say(
      `stage ${label}: ${(bufferedAtStop / 1e6).toFixed(1)} MB were still buffered at the stand-in when the offer stopped; flushed ${((tFlushed - t1) / 1000).toFixed(1)} s later`,
    );
  const ledger = p.standin.ledger();
  const distinct = new Set(ledger).size;
  let tPublished: number | undefined;
  let tLoaded: number | undefined;
  let published = 0;
  let loaded = 0;
  const drained = await waitUntil(
    async () => {
      const [st, ls] = await Promise.all([p.status(name), p.loadStats(name)]);
      published = st?.progress.postsPublished ?? published;
      loaded = ls?.rowsLoaded ?? loaded;
      if (tPublished === undefined && published >= ledger.length) tPublished = Date.now();
      if (tLoaded === undefined && loaded >= distinct) tLoaded = Date.now();
      return tLoaded !== undefined;
    },
    DRAIN_S * 1000,
    500,
  );
  const procs = sampler.stop();
  say(`stage ${label}: delivered ${ledger.length}, published ${published}, loaded ${loaded}`);
  await p.stopSupervisor(name, 60_000);
  // Bounded: an emulator still busy with a large insert can take minutes to answer.
  const history = await bounded(p.historyEvents(name), 60_000).catch(() => ({ supervisor: NaN, load: NaN }));
  const check = await bounded(verify(p, ledger, p.standin.malformedLines(), sinceIso), 180_000).catch(
    (err: Error) => {
      say(`stage ${label}: verification not finished: ${err.message}`);
      return unverified(ledger);
    },
  );
  const hist = await bounded(
    p.query<{ ms: number; n: number }>(
      `SELECT DIV(TIMESTAMP_DIFF(r.finished_at, x.received_at, MILLISECOND), 100) * 100 AS ms, COUNT(*) AS n
       FROM ${p.table('posts')} x JOIN ${p.table('runs')} r ON x.load_run_id = r.run_id
       WHERE x.received_at >= TIMESTAMP(@since) GROUP BY ms`,
      { since: sinceIso },
    ),
    120_000,
  ).catch((err: Error) => {
    say(`latency query failed: ${err.message}`);
    return [];
  });
  const latencyMs = percentiles(hist.map((h) => ({ ms: Number(h.ms), n: Number(h.n) })));

  const dur = (t1 - t0) / 1000;
  // Over the time the reader took to receive them, which outlasts the offer when it fell behind.
  const deliveredPerSec = ledger.length / Math.max(dur, (tFlushed - t0) / 1000);
  // Throughput, not latency: the published count is seen through progress reports (every
  // PROGRESS_REPORT_INTERVAL_MS) and loading waits up to one LOAD_INTERVAL_MS by design; those
  // scheduled waits are excluded here (the drain and latency columns show them).
  const publishedPerSec =
    published / Math.max(dur, ((tPublished ?? Date.now()) - t0 - PROGRESS_INTERVAL_MS) / 1000);
  const loadedPerSec = loaded / Math.max(dur, ((tLoaded ?? Date.now()) - t0 - LOAD_INTERVAL_MS) / 1000);
  const drainS = tLoaded ? (tLoaded - t1) / 1000 : null;
  // Sustained: the source kept up with the offer, and the backlog was gone within one load interval
  // plus two batches' work after the offer stopped.
  const lagBudgetS = LOAD_INTERVAL_MS / 1000 + 10;
  let bottleneck = 'none (sustained)';
  if (deliveredPerSec < 0.95 * offered)
    bottleneck = `source: stand-in + stream reader delivered ${(deliveredPerSec / offered).toFixed(2)} of the offer`;
  else if (tPublished === undefined || (tPublished - t1) / 1000 > PROGRESS_INTERVAL_MS / 1000 + 5)
    bottleneck = `publish: stream worker → Pub/Sub emulator at ${publishedPerSec.toFixed(0)}/s`;
  else if (drainS === null || drainS > lagBudgetS)
    bottleneck =
      `load: batch worker → BigQuery emulator at ${loadedPerSec.toFixed(0)}/s ` +
      `(emulator CPU ${procs['bigquery emulator']?.cpuPercent ?? '?'}%, drain ${drainS ?? '>' + DRAIN_S} s)`;
  const events = history.supervisor + history.load;
  return {
    label,
    offeredPerSec: offered,
    durationS: dur,
    delivered: ledger.length,
    deliveredPerSec,
    published,
    publishedPerSec,
    loaded,
    loadedPerSec,
    drainS,
    drained,
    latencyMs,
    procs,
    historyEvents: { ...history, per10kPosts: ledger.length > 0 ? (events / ledger.length) * 10_000 : NaN },
    check,
    bottleneck,
  };
}

async function baseline(p: Pipeline, n: number) {
  // The seed's design: each post published on its own (no batching), then inserted as one row.
  const posts = samplePosts(n);
  const pubsub = createPubSub(p.config.gcp);
  const topic = pubsub.topic(p.config.gcp.topic, { batching: { maxMessages: 1, maxMilliseconds: 0 } });
  const table = p.bq.dataset(p.config.gcp.dataset).table('baseline_posts');
  const schema = (await p.bq.dataset(p.config.gcp.dataset).table(p.config.gcp.tables.posts).getMetadata())[0]
    .schema as object;
  await table.create({ schema }).catch(() => undefined);
  const t = Date.now();
  for (const post of posts) {
    await topic.publishMessage({ data: Buffer.from(JSON.stringify(post)), attributes: { baseline: 'true' } });
    const meta = {
      messageId: post.id,
      publishTime: null,
      ingestedAt: new Date().toISOString(),
      loadRunId: 'seed',
    };
    await table.insert([toPostRow(post, meta)]);
  }
  const seconds = (Date.now() - t) / 1000;
  await pubsub.close();
  return { posts: posts.length, seconds, postsPerSec: posts.length / seconds };
}

async function publishCeiling(p: Pipeline, n: number) {
  const posts = samplePosts(Math.min(n, 2000));
  const pubsub = createPubSub(p.config.gcp);
  const [topic] = await pubsub.createTopic(`${p.config.gcp.topic}_ceiling`);
  const pub = pubsub.topic(topic.name, { batching: { maxMessages: 1000, maxMilliseconds: 20 } });
  const t = Date.now();
  const WINDOW = 5000;
  for (let i = 0; i < n; i += WINDOW) {
    const k = Math.min(WINDOW, n - i);
    await Promise.all(
      Array.from({ length: k }, (_, j) =>
        pub.publishMessage({ data: Buffer.from(JSON.stringify(posts[(i + j) % posts.length])) }),
      ),
    );
  }
  const seconds = (Date.now() - t) / 1000;
  await topic.delete().catch(() => undefined);
  await pubsub.close();
  return { messages: n, seconds, messagesPerSec: n / seconds };
}

/** Runs the load stage's own benchmark (dev/bench/load.ts) and parses its JSON report. */
function loadStage(env: NodeJS.ProcessEnv, messages: number): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'dev/bench/load.ts')], {
      cwd: ROOT,
      env: {
        ...env,
        BENCH_MESSAGES: String(messages),
        BENCH_BATCH_SIZES: env.BENCH_BATCH_SIZES ?? '5000,10000',
        BENCH_BASELINE_SAMPLE: env.BENCH_LOAD_BASELINE_SAMPLE ?? '500',
        // The lanes run in this process (runLaneBench), after it.
        BENCH_LOAD_SECTIONS: 'batch',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 15 * 60_000);
    child.once('exit', () => {
      clearTimeout(timer);
      const end = out.indexOf('\nstage');
      try {
        resolve(JSON.parse(end > 0 ? out.slice(0, end) : out) as Record<string, unknown>);
      } catch {
        say(`load stage output not parsed: ${out.slice(0, 300)}`);
        resolve(undefined);
      }
    });
  });
}

const f0 = (n: number | null | undefined) =>
  n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(0);

function markdown(stages: StageResult[], extra: Record<string, unknown>): string {
  const b = extra.baseline as { postsPerSec: number };
  const pc = extra.publishCeiling as { messagesPerSec: number };
  const lines = [
    '| offered/s | delivered/s | published/s | loaded/s | × seed | drain s | p50 / p95 / p99 ms | stream RSS / CPU | batch RSS / CPU | BQ emu CPU | history ev / 10k | lost | dup | bottleneck |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of stages) {
    const sw = s.procs['stream worker'];
    const bw = s.procs['batch worker'];
    lines.push(
      `| ${s.label === 'max' ? `max (${s.offeredPerSec})` : s.offeredPerSec} | ${f0(s.deliveredPerSec)} | ${f0(s.publishedPerSec)} | ${f0(s.loadedPerSec)} | ${(s.loadedPerSec / b.postsPerSec).toFixed(0)}× | ${s.drainS?.toFixed(1) ?? `>${DRAIN_S}`} | ${f0(s.latencyMs.p50)} / ${f0(s.latencyMs.p95)} / ${f0(s.latencyMs.p99)} | ${sw?.peakRssMiB ?? '–'} MiB / ${sw?.cpuPercent ?? '–'}% | ${bw?.peakRssMiB ?? '–'} MiB / ${bw?.cpuPercent ?? '–'}% | ${s.procs['bigquery emulator']?.cpuPercent ?? '–'}% | ${f0(s.historyEvents.per10kPosts)} | ${lostCell(s)} | ${s.check.duplicates} | ${s.bottleneck} |`,
    );
  }
  lines.push('');
  lines.push(`- seed design (publish + single-row insert per post): ${b.postsPerSec.toFixed(1)} posts/s`);
  lines.push(`- bare bulk publish ceiling: ${pc.messagesPerSec.toFixed(0)} messages/s`);
  const ls = extra.loadStage as
    | {
        runs: { batchSize: number; rowsPerSecond: number }[];
        baseline: { rowsPerSecond: number };
        ceiling: { rowsPerSecond: number };
      }
    | undefined;
  if (ls) {
    for (const r of ls.runs)
      lines.push(`- load stage, batch ${r.batchSize}: ${r.rowsPerSecond.toFixed(0)} rows/s`);
    lines.push(`- load stage baseline (insert per message): ${ls.baseline.rowsPerSecond.toFixed(1)} rows/s`);
    lines.push(`- bare bulk load ceiling (one load job): ${ls.ceiling.rowsPerSecond.toFixed(0)} rows/s`);
  }
  const rss = extra.batchWorkerRss as ReturnType<typeof batchWorkerRss>;
  if (rss)
    lines.push(
      `- batch worker peak RSS at ${rss.rate} posts/s (${rss.build}): ${rss.peakRssMiB} MiB = ` +
        `${rss.peakRssMB.toFixed(0)} MB; target < ${RSS_TARGET_MB} MB: ${rss.met ? 'met' : 'missed'}`,
    );
  const lanes = extra.lanes as LaneBenchReport | undefined;
  if (lanes) lines.push('', laneMarkdown(lanes));
  return lines.join('\n');
}

/** The batch worker's peak RSS in the stage at RSS_RATE (or the nearest offered rate), vs the target. */
function batchWorkerRss(stages: StageResult[]) {
  const s = [...stages].sort(
    (a, b) => Math.abs(a.offeredPerSec - RSS_RATE) - Math.abs(b.offeredPerSec - RSS_RATE),
  )[0];
  const peak = s?.procs['batch worker']?.peakRssMiB;
  if (peak === undefined) return undefined;
  const peakRssMB = (peak * 1024 * 1024) / 1e6;
  return {
    rate: s.offeredPerSec,
    build: PRODUCTION ? 'production build, node dist/' : 'tsx',
    peakRssMiB: peak,
    peakRssMB,
    targetMB: RSS_TARGET_MB,
    met: peakRssMB < RSS_TARGET_MB,
  };
}

async function main(): Promise<void> {
  const started = new Date();
  say('stream reader beside its peers (dev/bench/reader-peers.ts)');
  const readerPeers = await runReaderPeers({ log: say });
  say(`stack dir ${process.env.STACK_DIR ?? '.local'}`);
  const up = await stackUp({ recycleBigQuery: true, log: say });
  Object.assign(process.env, up.env);
  const tag = `bench_${started.getTime().toString(36)}`;
  const p = await startPipeline({
    tag,
    production: PRODUCTION,
    workerEnv: {
      LOAD_INTERVAL_MS: String(LOAD_INTERVAL_MS),
      PROGRESS_REPORT_INTERVAL_MS: String(PROGRESS_INTERVAL_MS),
    },
    log: say,
  });
  p.startWorker('stream');
  p.startWorker('batch');
  const stages: StageResult[] = [];
  try {
    for (const r of rates) {
      await recycleBigQueryIfBloated(say);
      await stackUp({ log: say });
      const offered = r === 'max' ? Number(values['max-rate']) : Number(r);
      stages.push(await runStage(p, r, offered));
      // Partial results survive an interrupted run.
      mkdirSync(join(ROOT, 'artifacts/bench'), { recursive: true });
      writeFileSync(
        join(ROOT, `artifacts/bench/${started.toISOString().replace(/[:.]/g, '-')}.partial.json`),
        JSON.stringify({ stages }, null, 2),
      );
      const s = stages[stages.length - 1];
      say(
        `stage ${r}: ${f0(s.deliveredPerSec)}/${f0(s.publishedPerSec)}/${f0(s.loadedPerSec)} per s, lost ${lostCell(s)}, dup ${s.check.duplicates}, ${s.bottleneck}`,
      );
    }
    say(`baseline: seed design on ${values['baseline-sample']} posts`);
    const base = await baseline(p, Number(values['baseline-sample']));
    say(`publish ceiling on ${values['ceiling-messages']} messages`);
    const pubCeil = await publishCeiling(p, Number(values['ceiling-messages']));
    await p.close();
    let loadStageReport: Record<string, unknown> | undefined;
    if (!values['skip-load-stage']) {
      await recycleBigQueryIfBloated(say);
      await stackUp({ log: say });
      say(`load stage (dev/bench/load.ts) on ${values['ceiling-messages']} messages`);
      loadStageReport = await loadStage(process.env, Number(values['ceiling-messages']));
    }
    let lanes: LaneBenchReport | undefined;
    if (!values['skip-lanes']) {
      await recycleBigQueryIfBloated(say);
      await stackUp({ log: say });
      say('load lanes (dev/bench/load.ts runLaneBench): 1, 2 and 4 lanes against the bare load-job ceiling');
      lanes = await runLaneBench({ log: say }).catch((err: Error) => {
        say(`load lanes failed: ${err.message}`);
        return undefined;
      });
    }
    const extra = {
      baseline: base,
      publishCeiling: pubCeil,
      loadStage: loadStageReport,
      lanes,
      batchWorkerRss: batchWorkerRss(stages),
      readerPeers,
    };
    const report = {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      settings: {
        durationS: DURATION_S,
        loadIntervalMs: LOAD_INTERVAL_MS,
        progressReportIntervalMs: PROGRESS_INTERVAL_MS,
        drainTimeoutS: DRAIN_S,
        rates,
        workers: PRODUCTION ? 'production build (node dist/src/workers/*.js)' : 'tsx',
      },
      stages,
      ...extra,
    };
    const dir = join(ROOT, 'artifacts/bench');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(report, null, 2));
    process.stdout.write(
      `${markdown(stages, extra)}\n\n${readerPeersMarkdown(readerPeers)}\n\nJSON: ${file}\n`,
    );
    const bad =
      stages.some((s) => s.drained && (s.check.lost > 0 || s.check.duplicates > 0)) ||
      (lanes?.runs.some((r) => !r.check.exactlyOnce) ?? false);
    process.exitCode = bad ? 1 : 0;
  } finally {
    await p.close().catch(() => undefined);
    if (!values['keep-stack'] && up.started.length > 0) await stackDown({ log: say });
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
