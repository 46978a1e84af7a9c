/**
 * The chaos run, shared by `npm run chaos` (dev/chaos/main.ts) and the e2e test: the whole pipeline
 * at a steady rate while faults are injected one after another, each followed by a wait for recovery
 * (from when the fault has fired: the stand-in delivering on a live connection again, and the
 * published and loaded counters both moving). The workers run as on X's pay-per-use tier:
 * `X_BACKFILL_MINUTES=0` (X replays nothing after a reconnect), so every interval the stream was
 * not delivering must be recovered by the gap fill (recent search), with a small margin
 * (`X_GAP_MARGIN_SECONDS=2`) so that fills run soon after each gap.
 *
 * The truth is the stand-in's world ledger: every matching post it created, whether or not anyone
 * was connected (`world().created`), not only what it delivered on the stream.
 *
 * The window the verdict checks, on the stand-in's clock (each post's `created_at`):
 * - it opens at the `created_at` of the first post the stream delivered (the offer starts once the
 *   stream is connected, so nothing matching was created before it);
 * - it closes at the latest `created_at` among the posts the stream had delivered when the offer
 *   stops (taken just before the rate is set to 0, after the last fault has recovered and settled).
 *   Posts created after that could only be read by a stream that no longer runs, or by a gap that is
 *   never closed, so they cannot be expected; those the pipeline stores anyway count as `extra`.
 * Both ends are inclusive: posts of one generator tick share a `created_at`.
 *
 * At the end the offer stops; the verdict waits (bounded) until the supervisor's `status` shows a
 * progress report sent after the stop, no pending or filling gap and no open gap, then (bounded)
 * until every post of the window is in `posts` (and every malformed line in `posts_dead_letter`).
 * lost = created in the window and not in `posts`; duplicates = `COUNT(*) − COUNT(DISTINCT id)`.
 * Reported besides: gaps found / filled / unrecoverable and posts filled (`status.gaps.counts`),
 * posts read by search (`status.budget.monthSearchPosts`), the extra posts read because of margins
 * (ids search returned that the stream had also delivered: searched ∩ delivered), and the rows of
 * `posts` whose `source` is `search`.
 */
import { supervisorWorkflowId, type PipelineStatus } from '../../src/domain/pipeline-status';
import type { StreamRule } from '../../src/domain/rules';
import { pauseSignal, resumeSignal, setRulesUpdate } from '../../src/workflows/messages';
import { sleep, startPipeline, waitUntil, type Pipeline } from '../bench/pipeline';
import { recycleBigQueryIfBloated, stackDown, stackUp } from '../stack/manager';
import type { StandinFaults, StandinWorld } from '../x-api-standin/server';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

export const FAULT_KINDS = [
  'kill-stream-worker',
  'kill-batch-worker',
  'temporal-restart',
  'x-drop',
  'x-end',
  'x-stall',
  'x-429',
  'x-503',
  'x-operational-disconnect',
  'x-malformed',
  'x-split-writes',
  'x-duplicates',
  'pubsub-outage',
  'bigquery-outage',
  'pause-resume',
  'pause-resume-setRules',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ChaosOptions {
  /** Faults in order (a kind may repeat). */
  plan: FaultKind[];
  /** Steady offered rate, posts/s. */
  rate?: number;
  /** Seconds of steady running before the first fault and between faults. */
  settleS?: number;
  /** Emulator outage length, seconds. */
  outageS?: number;
  /** Worker down time after SIGKILL, seconds. */
  downS?: number;
  /** How long the stream stays paused in the pause faults, seconds. */
  pauseS?: number;
  /** Max wait for recovery after each fault, seconds. */
  recoveryTimeoutS?: number;
  /** Max wait, after the offer stops, for the gap ledger to settle (nothing pending or open), seconds. */
  gapTimeoutS?: number;
  /** Max wait, after that, for every post of the window to be in BigQuery, seconds. */
  drainTimeoutS?: number;
  /** `X_GAP_MARGIN_SECONDS` of the workers. @default 2 */
  gapMarginS?: number;
  /** Restart the BigQuery emulator between faults when it is bloated (own stack only). */
  recycleBigQuery?: boolean;
  /** Settings for the workers and the harness (e.g. private task queues on a shared server). */
  env?: Record<string, string>;
  /** Keep the workers' logs here (see `PipelineOptions.workerLogDir`). */
  workerLogDir?: string;
  log?: (line: string) => void;
}

export interface FaultOutcome {
  kind: FaultKind;
  at: string;
  /** Seconds from injection until published and loaded both moved again; null = not within the timeout. */
  recoveryS: number | null;
}

/** A post of the window missing from `posts`, with the recorded gap that covers it, if any. */
export interface LostPost {
  id: string;
  created_at: string;
  delivered: boolean;
  searched: boolean;
  gap?: string;
}

export interface ChaosVerdict {
  faults: FaultOutcome[];
  survivedByKind: Record<string, number>;
  notRecovered: number;
  /** The checked window (`created_at`, inclusive both ends; see the file header). */
  window: { start: string; end: string } | null;
  /** Posts the stand-in created in the window: what `posts` must hold. */
  expected: number;
  /** Of those, delivered on the stream (the rest could only come from the gap fill). */
  expectedDelivered: number;
  /** Posts the stand-in created in the whole run / delivered (unique) / returned by search (unique). */
  created: number;
  delivered: number;
  searched: number;
  /** Lines the stand-in wrote (duplicates included). */
  ledgerWrites: number;
  rows: number;
  distinctRows: number;
  lost: number;
  duplicates: number;
  /** Ids in `posts` outside the window (created after it closed and delivered or filled anyway). */
  extra: number;
  /** Ids in `posts` the stand-in never created (must be 0). */
  unknown: number;
  /** Rows of `posts` with `source = 'search'` (stored from the gap fill, not the stream). */
  searchRows: number;
  gaps: {
    found: number;
    filled: number;
    unrecoverable: number;
    skipped: number;
    pending: number;
    open: boolean;
    postsFilled: number;
    /** Posts read by search (`status.budget.monthSearchPosts`). */
    postsReadBySearch: number | null;
    /** Posts search returned that the stream had delivered too (searched ∩ delivered): the margins' cost. */
    extraReadByMargins: number;
    /** Posts search returned that the stream never delivered: what the fill recovered. */
    recoveredBySearch: number;
    /** Search requests the stand-in received. */
    searchRequests: number;
    /** The gap ledger at the end (unfinished gaps and the newest finished ones). */
    ledger: NonNullable<PipelineStatus['gaps']>['ledger'];
  };
  malformedWritten: number;
  malformedDeadLetters: number;
  longestRecoveryS: number | null;
  /** The gap ledger settled (nothing pending, nothing open) within `gapTimeoutS`. */
  gapsSettled: boolean;
  /** Every post of the window was in `posts` within `drainTimeoutS`. */
  drained: boolean;
  /** Seconds from the offer's stop until the ledger settled / the window was in BigQuery. */
  gapsSettledS: number | null;
  drainedS: number | null;
  unexpectedWorkerExits: number;
  lostSample: LostPost[];
  ok: boolean;
}

const RULE_POOL: StreamRule[] = [
  { value: 'ev', tag: 'ev' },
  { value: 'spacex', tag: 'spacex' },
  { value: 'cybertruck', tag: 'cybertruck' },
  { value: 'gigafactory', tag: 'gigafactory' },
];

/**
 * The rules after the `n`th setRules fault: `tesla` plus the first `n` of the pool (after the pool,
 * one more each time, then the pool again from `ev`). Rules are only ever added: the gap fill
 * searches the rules active when the gap is handed over (after the resume), so a rule removed during
 * a pause would make the posts created under it in the pause unrecoverable by design, and the world
 * ledger (ids and times only) cannot tell those apart.
 */
function ruleSet(n: number): StreamRule[] {
  const extra = RULE_POOL.slice(0, Math.min(n, RULE_POOL.length));
  for (let i = RULE_POOL.length; i < n; i++) extra.push({ value: `chaos${i}`, tag: `chaos${i}` });
  return [{ value: 'tesla', tag: 'tesla' }, ...extra];
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosVerdict> {
  const log = opts.log ?? (() => undefined);
  const rate = opts.rate ?? 50;
  const settleS = opts.settleS ?? 5;
  const outageS = opts.outageS ?? 12;
  const downS = opts.downS ?? 3;
  const pauseS = opts.pauseS ?? 3;
  const recoveryTimeoutS = opts.recoveryTimeoutS ?? 150;
  const stream = `chaos-${Date.now().toString(36)}`;
  const tag = `chaos_${Date.now().toString(36)}`;

  const [pubHost, pubPort] = (process.env.PUBSUB_EMULATOR_HOST ?? '127.0.0.1:8085').split(':');
  const bqUrl = new URL(process.env.BIGQUERY_EMULATOR_HOST ?? 'http://127.0.0.1:9050');
  const proxies: { pubsub: TcpProxy; bigquery: TcpProxy } = {
    pubsub: await startTcpProxy({ host: pubHost, port: Number(pubPort) }),
    bigquery: await startTcpProxy({ host: bqUrl.hostname, port: Number(bqUrl.port || 80) }),
  };
  const p: Pipeline = await startPipeline({
    tag,
    standin: { rate: 0 },
    env: opts.env,
    workerLogDir: opts.workerLogDir,
    workerEnv: {
      PUBSUB_EMULATOR_HOST: proxies.pubsub.address,
      BIGQUERY_EMULATOR_HOST: `http://${proxies.bigquery.address}`,
      LOAD_INTERVAL_MS: '5000',
      PROGRESS_REPORT_INTERVAL_MS: '2000',
      X_STALL_TIMEOUT_MS: '6000',
      LOG_LEVEL: 'info',
      // X's pay-per-use tier: no replay after a reconnect; every gap is filled by search.
      X_BACKFILL_MINUTES: '0',
      X_GAP_FILL: 'true',
      X_GAP_FILL_ON_RESUME: 'true',
      X_GAP_MARGIN_SECONDS: String(opts.gapMarginS ?? 2),
      WORKER_SHUTDOWN_GRACE_MS: '5000',
    },
    log,
  });

  p.startWorker('stream');
  p.startWorker('batch');
  // Workers that die on their own are restarted (and counted): the run is about the data.
  const deliberate = new Set<string>();
  let unexpected = 0;
  let watching = true;
  const watchdog = (async () => {
    while (watching) {
      for (const k of ['stream', 'batch'] as const) {
        if (!p.workers[k] && !deliberate.has(k)) {
          unexpected++;
          log(`${k} worker died unexpectedly; restarting it`);
          p.startWorker(k);
        }
      }
      await sleep(1000);
    }
  })();

  const faults: FaultOutcome[] = [];
  let rulesChanges = 0;
  try {
    await p.startSupervisor(stream);
    if (!(await waitUntil(async () => (await p.status(stream))?.progress.connected === true, 240_000)))
      throw new Error('the stream did not connect within 240 s');
    p.standin.setRate(rate);
    log(`steady rate ${rate} posts/s; stream ${stream}, dataset ${tag}`);
    await sleep(settleS * 1000);

    const counters = async () => {
      const [st, ls] = await Promise.all([p.status(stream), p.loadStats(stream)]);
      // Lines the stand-in wrote on a live connection: the stream is delivering.
      const delivered = p.standin.stats().postsWritten;
      return { delivered, published: st?.progress.postsPublished, loaded: ls?.messages };
    };
    const posts = (n: number) => Math.max(1, Math.round(n));
    const xFault = async (f: StandinFaults, holdS = 0, undo?: StandinFaults) => {
      p.standin.setFaults(f);
      if (holdS > 0) await sleep(holdS * 1000);
      if (undo) p.standin.setFaults(undo);
    };
    const supervisor = () => p.client.workflow.getHandle(supervisorWorkflowId(stream));
    const inject: Record<FaultKind, () => Promise<void>> = {
      'kill-stream-worker': async () => {
        deliberate.add('stream');
        await p.killWorker('stream', 'SIGKILL');
        await sleep(downS * 1000);
        p.startWorker('stream');
        deliberate.delete('stream');
      },
      'kill-batch-worker': async () => {
        deliberate.add('batch');
        await p.killWorker('batch', 'SIGKILL');
        await sleep(downS * 1000);
        p.startWorker('batch');
        deliberate.delete('batch');
      },
      'temporal-restart': async () => {
        await stackDown({ only: ['temporal'] });
        await sleep(downS * 1000);
        await stackUp();
      },
      'x-drop': () => xFault({ dropAfterPosts: posts(rate) }),
      'x-end': () => xFault({ endAfterPosts: posts(rate) }),
      'x-stall': () => xFault({ stallAfterPosts: posts(rate) }),
      'x-429': () =>
        xFault({ rateLimitConnects: 1, rateLimitResetSeconds: 3, endAfterPosts: posts(rate / 2) }),
      'x-503': () => xFault({ unavailableConnects: 2, endAfterPosts: posts(rate / 2) }),
      'x-operational-disconnect': () => xFault({ disconnectAfterPosts: posts(rate) }),
      'x-malformed': () => xFault({ malformedAfterPosts: posts(rate / 2) }),
      'x-split-writes': () => xFault({ splitWrites: true }, 8, { splitWrites: false }),
      'x-duplicates': () => xFault({ duplicateEvery: 7 }, 8, { duplicateEvery: 0 }),
      'pubsub-outage': async () => {
        proxies.pubsub.pause();
        await sleep(outageS * 1000);
        proxies.pubsub.resume();
      },
      'bigquery-outage': async () => {
        proxies.bigquery.pause();
        await sleep(outageS * 1000);
        proxies.bigquery.resume();
      },
      // An operator's pause: X goes on creating posts; the resume's gap is filled by search.
      'pause-resume': async () => {
        await supervisor().signal(pauseSignal);
        await sleep(pauseS * 1000);
        await supervisor().signal(resumeSignal);
      },
      'pause-resume-setRules': async () => {
        await supervisor().signal(pauseSignal);
        await sleep(pauseS * 1000);
        rulesChanges += 1;
        await supervisor().executeUpdate(setRulesUpdate, { args: [ruleSet(rulesChanges)] });
        await supervisor().signal(resumeSignal);
      },
    };

    for (const kind of opts.plan) {
      if (opts.recycleBigQuery) {
        await recycleBigQueryIfBloated(log);
        await stackUp({ log });
      }
      const t = Date.now();
      log(`fault ${faults.length + 1}/${opts.plan.length}: ${kind}`);
      await inject[kind]();
      // Recovered: the stand-in delivers on a live connection again, and published and loaded both
      // move, all counted from when the fault had done its harm (a stand-in fault fires only after N
      // more posts or at the next connects; the other faults are over when `inject` returns).
      await waitUntil(async () => standinFaultsFired(p.standin.stats().faults), recoveryTimeoutS * 1000, 200);
      const before = await counters();
      const recovered = await waitUntil(
        async () => {
          const now = await counters();
          return (
            now.delivered > before.delivered &&
            now.published !== undefined &&
            now.loaded !== undefined &&
            now.published > (before.published ?? -1) &&
            now.loaded > (before.loaded ?? -1)
          );
        },
        Math.max(1000, recoveryTimeoutS * 1000 - (Date.now() - t)),
        500,
      );
      const recoveryS = recovered ? (Date.now() - t) / 1000 : null;
      faults.push({ kind, at: new Date(t).toISOString(), recoveryS });
      log(
        `  ${kind}: ${recoveryS === null ? `NOT recovered within ${recoveryTimeoutS} s` : `recovered in ${recoveryS.toFixed(1)} s`}`,
      );
      await sleep(settleS * 1000);
    }

    // The window closes at the newest post delivered before the offer stops (see the header).
    const window = deliveredWindow(p.standin.world());
    p.standin.setRate(0);
    const stopAt = Date.now();
    log(
      `offer stopped; window ${window ? `${window.start} .. ${window.end}` : '(nothing delivered)'}; waiting for the gap fill`,
    );

    // Gap fill needs time: each gap is searched once its end (+ margin) is 10 s old. Wait until a
    // progress report sent after the stop has arrived (it carries every gap closed before it) and
    // nothing is pending, filling or open.
    let last: PipelineStatus | undefined;
    const gapsSettled = await waitUntil(
      async () => {
        const st = await p.status(stream);
        if (!st) return false;
        last = st;
        const reported = st.progress.updatedAt ? Date.parse(st.progress.updatedAt) > stopAt : false;
        return reported && st.gaps?.counts.pending === 0 && st.gaps.open === undefined;
      },
      (opts.gapTimeoutS ?? 180) * 1000,
      1000,
    );
    const gapsSettledS = gapsSettled ? (Date.now() - stopAt) / 1000 : null;
    const g = last?.gaps?.counts;
    log(
      `gap ledger ${gapsSettled ? `settled after ${gapsSettledS!.toFixed(1)} s` : 'NOT settled'}: ` +
        `${g?.found ?? '?'} found, ${g?.filled ?? '?'} filled, ${g?.pending ?? '?'} pending, ` +
        `${g?.unrecoverable ?? '?'} unrecoverable, open ${last?.gaps?.open ? 'yes' : 'no'}`,
    );

    // Then wait for the window's posts in BigQuery (and the malformed lines in the dead letters).
    const expectedIds = () => {
      const w = p.standin.world();
      return window ? inWindow(w, window) : [];
    };
    const malformed = p.standin.malformedLines();
    let present = new Set<string>();
    const drained = await waitUntil(
      async () => {
        const expected = expectedIds();
        const [a] = await p.query<{ d: number }>(`SELECT COUNT(DISTINCT id) AS d FROM ${p.table('posts')}`);
        if (Number(a.d) < expected.length) return false;
        present = await storedIds(p);
        if (expected.some((c) => !present.has(c.id))) return false;
        const [b] = await p.query<{ n: number }>(
          `SELECT COUNT(*) AS n FROM ${p.table('dead')} WHERE error_stage = 'malformed'`,
        );
        return Number(b.n) >= malformed;
      },
      (opts.drainTimeoutS ?? 180) * 1000,
      3000,
    );
    const drainedS = drained ? (Date.now() - stopAt) / 1000 : null;

    // The verdict.
    const final = (await p.status(stream)) ?? last;
    const world = p.standin.world();
    const expected = window ? inWindow(world, window) : [];
    const expectedSet = new Set(expected.map((c) => c.id));
    const deliveredSet = new Set(world.delivered);
    const searchedSet = new Set(world.searched);
    const createdSet = new Set(world.created.map((c) => c.id));
    present = await storedIds(p);
    const [agg] = await p.query<{ n: number; d: number }>(
      `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM ${p.table('posts')}`,
    );
    const [dl] = await p.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM ${p.table('dead')} WHERE error_stage = 'malformed'`,
    );
    const lost = expected.filter((c) => !present.has(c.id));
    let extra = 0;
    let unknown = 0;
    for (const id of present) {
      if (!createdSet.has(id)) unknown++;
      else if (!expectedSet.has(id)) extra++;
    }
    const gapLedger = final?.gaps?.ledger ?? [];
    const coveringGap = (createdAt: string) => {
      const t = Date.parse(createdAt);
      const gap = gapLedger.find((x) => Date.parse(x.start) <= t && t <= Date.parse(x.end));
      return gap ? `${gap.id} (${gap.reason}, ${gap.state}, ${gap.start} .. ${gap.end})` : undefined;
    };
    const counts = final?.gaps?.counts;
    const survivedByKind: Record<string, number> = {};
    for (const f of faults)
      if (f.recoveryS !== null) survivedByKind[f.kind] = (survivedByKind[f.kind] ?? 0) + 1;
    const recoveries = faults.map((f) => f.recoveryS).filter((x): x is number => x !== null);
    const duplicates = Number(agg.n) - Number(agg.d);
    const malformedDeadLetters = Number(dl.n);
    const verdict: ChaosVerdict = {
      faults,
      survivedByKind,
      notRecovered: faults.length - recoveries.length,
      window,
      expected: expected.length,
      expectedDelivered: expected.filter((c) => deliveredSet.has(c.id)).length,
      created: world.created.length,
      delivered: world.delivered.length,
      searched: world.searched.length,
      ledgerWrites: p.standin.ledger().length,
      rows: Number(agg.n),
      distinctRows: Number(agg.d),
      lost: lost.length,
      duplicates,
      extra,
      unknown,
      searchRows: await searchRows(p),
      gaps: {
        found: counts?.found ?? 0,
        filled: counts?.filled ?? 0,
        unrecoverable: counts?.unrecoverable ?? 0,
        skipped: counts?.skipped ?? 0,
        pending: counts?.pending ?? 0,
        open: final?.gaps?.open !== undefined,
        postsFilled: counts?.postsFilled ?? 0,
        postsReadBySearch: final?.budget?.monthSearchPosts ?? null,
        extraReadByMargins: world.searched.filter((id) => deliveredSet.has(id)).length,
        recoveredBySearch: world.searched.filter((id) => !deliveredSet.has(id)).length,
        searchRequests: p.standin.stats().searchRequests,
        ledger: gapLedger,
      },
      malformedWritten: malformed,
      malformedDeadLetters,
      longestRecoveryS: recoveries.length > 0 ? Math.max(...recoveries) : null,
      gapsSettled,
      drained,
      gapsSettledS,
      drainedS,
      unexpectedWorkerExits: unexpected,
      lostSample: lost.slice(0, 10).map((c) => {
        const gap = coveringGap(c.created_at);
        return {
          id: c.id,
          created_at: c.created_at,
          delivered: deliveredSet.has(c.id),
          searched: searchedSet.has(c.id),
          ...(gap ? { gap } : {}),
        };
      }),
      ok:
        window !== null &&
        expected.length > 0 &&
        lost.length === 0 &&
        duplicates === 0 &&
        unknown === 0 &&
        malformedDeadLetters >= malformed,
    };
    return verdict;
  } finally {
    watching = false;
    await watchdog;
    await p.stopSupervisor(stream, 30_000).catch(() => undefined);
    await p.close().catch(() => undefined);
    await proxies.pubsub.close();
    await proxies.bigquery.close();
  }
}

/** Whether the stand-in's one-shot faults have all fired (the held ones, split writes and duplicates, are undone by `inject`). */
function standinFaultsFired(f: StandinFaults): boolean {
  const pending = [
    f.dropAfterPosts,
    f.endAfterPosts,
    f.stallAfterPosts,
    f.disconnectAfterPosts,
    f.malformedAfterPosts,
    f.errorMessageAfterPosts,
  ].some((n) => n !== undefined);
  return !pending && !(f.rateLimitConnects ?? 0) && !(f.unavailableConnects ?? 0);
}

/** From the first post delivered to the newest post delivered so far (`created_at`), or null. */
function deliveredWindow(w: StandinWorld): { start: string; end: string } | null {
  const createdAt = new Map(w.created.map((c) => [c.id, Date.parse(c.created_at)]));
  let start = Infinity;
  let end = -Infinity;
  for (const id of w.delivered) {
    const t = createdAt.get(id);
    if (t === undefined) continue;
    if (t < start) start = t;
    if (t > end) end = t;
  }
  if (!Number.isFinite(start)) return null;
  return { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
}

/** The posts the stand-in created in the window, both ends inclusive. */
function inWindow(w: StandinWorld, window: { start: string; end: string }): StandinWorld['created'] {
  const start = Date.parse(window.start);
  const end = Date.parse(window.end);
  return w.created.filter((c) => {
    const t = Date.parse(c.created_at);
    return t >= start && t <= end;
  });
}

async function storedIds(p: Pipeline): Promise<Set<string>> {
  const rows = await p.query<{ id: string }>(`SELECT DISTINCT id FROM ${p.table('posts')}`);
  return new Set(rows.map((r) => r.id));
}

/** Rows stored from the gap fill; 0 when no search post was ever loaded (the column is added then). */
async function searchRows(p: Pipeline): Promise<number> {
  try {
    const [r] = await p.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM ${p.table('posts')} WHERE source = 'search'`,
    );
    return Number(r.n);
  } catch {
    return 0;
  }
}

export function formatVerdict(v: ChaosVerdict): string {
  const lines = ['faults survived by kind:'];
  for (const [k, n] of Object.entries(v.survivedByKind)) lines.push(`  ${k.padEnd(26)} ${n}`);
  if (v.notRecovered > 0) lines.push(`  not recovered within the timeout: ${v.notRecovered}`);
  const g = v.gaps;
  lines.push(
    `window (created_at) ${v.window ? `${v.window.start} .. ${v.window.end}` : '–'}: ${v.expected} posts created, ${v.expectedDelivered} of them delivered on the stream`,
    `stand-in: ${v.created} created, ${v.delivered} delivered (${v.ledgerWrites} writes incl. duplicates), ${v.searched} returned by search (${g.searchRequests} search requests)`,
    `gaps: ${g.found} found, ${g.filled} filled, ${g.unrecoverable} unrecoverable, ${g.skipped} skipped, ${g.pending} pending, open ${g.open}; posts filled ${g.postsFilled}`,
    `posts read by search ${g.postsReadBySearch ?? '–'}; extra read by margins (searched ∩ delivered) ${g.extraReadByMargins}; recovered only by search ${g.recoveredBySearch}`,
    `posts: ${v.rows} rows (${v.distinctRows} distinct), source = search ${v.searchRows}, outside the window ${v.extra}, unknown ${v.unknown}`,
    `lost ${v.lost}, duplicated ${v.duplicates}`,
    ...v.lostSample.map(
      (l) =>
        `  lost ${l.id} created ${l.created_at} delivered ${l.delivered} searched ${l.searched} gap ${l.gap ?? 'none recorded'}`,
    ),
    `malformed lines ${v.malformedWritten}, in dead letters ${v.malformedDeadLetters}`,
    `longest recovery ${v.longestRecoveryS?.toFixed(1) ?? '–'} s; gaps settled ${v.gapsSettled} (${v.gapsSettledS?.toFixed(1) ?? '–'} s after the stop), drained ${v.drained} (${v.drainedS?.toFixed(1) ?? '–'} s); unexpected worker exits ${v.unexpectedWorkerExits}`,
    `verdict: ${v.ok ? 'PASS' : 'FAIL'}`,
  );
  return lines.join('\n');
}
