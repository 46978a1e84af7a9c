/**
 * The chaos run, shared by `npm run chaos` (dev/chaos/main.ts) and the e2e test: the whole pipeline
 * at a steady rate while faults are injected one after another, each followed by a wait for recovery
 * (published and loaded counters both moving again). At the end the offer stops, everything
 * delivered is awaited in BigQuery (bounded), and the stand-in's ledger is compared with `posts` +
 * `posts_dead_letter`: lost = 0, duplicates = 0, every malformed line dead-lettered.
 */
import { supervisorWorkflowId } from '../../src/domain/pipeline-status';
import { pauseSignal, resumeSignal, setRulesUpdate } from '../../src/workflows/messages';
import { sleep, startPipeline, verify, waitUntil, type Pipeline } from '../bench/pipeline';
import { recycleBigQueryIfBloated, stackDown, stackUp } from '../stack/manager';
import type { StandinFaults } from '../x-api-standin/server';
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
  /** Max wait for recovery after each fault, seconds. */
  recoveryTimeoutS?: number;
  /** Max wait for the final drain, seconds. */
  drainTimeoutS?: number;
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

export interface ChaosVerdict {
  faults: FaultOutcome[];
  survivedByKind: Record<string, number>;
  notRecovered: number;
  postsChecked: number;
  ledgerPosts: number;
  rows: number;
  lost: number;
  duplicates: number;
  /** Ids in `posts` not in the ledger (lines cut by a drop and re-sent by backfill). */
  extra: number;
  malformedWritten: number;
  malformedDeadLetters: number;
  longestRecoveryS: number | null;
  drained: boolean;
  unexpectedWorkerExits: number;
  lostSample: string[];
  ok: boolean;
}

const RULE_SETS = [
  [{ value: 'tesla', tag: 'tesla' }],
  [
    { value: 'tesla', tag: 'tesla' },
    { value: 'ev', tag: 'ev' },
  ],
];

export async function runChaos(opts: ChaosOptions): Promise<ChaosVerdict> {
  const log = opts.log ?? (() => undefined);
  const rate = opts.rate ?? 50;
  const settleS = opts.settleS ?? 5;
  const outageS = opts.outageS ?? 12;
  const downS = opts.downS ?? 3;
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
      // A retried stream attempt asks X for the minutes since its last post (the stand-in keeps them).
      X_BACKFILL_MINUTES: '2',
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
  let rulesIdx = 0;
  try {
    await p.startSupervisor(stream);
    if (!(await waitUntil(async () => (await p.status(stream))?.progress.connected === true, 240_000)))
      throw new Error('the stream did not connect within 240 s');
    p.standin.setRate(rate);
    log(`steady rate ${rate} posts/s; stream ${stream}, dataset ${tag}`);
    await sleep(settleS * 1000);

    const counters = async () => {
      const [st, ls] = await Promise.all([p.status(stream), p.loadStats(stream)]);
      return { published: st?.progress.postsPublished, loaded: ls?.messages };
    };
    const posts = (n: number) => Math.max(1, Math.round(n));
    const xFault = async (f: StandinFaults, holdS = 0, undo?: StandinFaults) => {
      p.standin.setFaults(f);
      if (holdS > 0) await sleep(holdS * 1000);
      if (undo) p.standin.setFaults(undo);
    };
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
      'pause-resume-setRules': async () => {
        const h = p.client.workflow.getHandle(supervisorWorkflowId(stream));
        await h.signal(pauseSignal);
        await sleep(3000);
        rulesIdx = (rulesIdx + 1) % RULE_SETS.length;
        await h.executeUpdate(setRulesUpdate, { args: [RULE_SETS[rulesIdx]] });
        await h.signal(resumeSignal);
      },
    };

    for (const kind of opts.plan) {
      if (opts.recycleBigQuery) {
        await recycleBigQueryIfBloated(log);
        await stackUp({ log });
      }
      const before = await counters();
      const t = Date.now();
      log(`fault ${faults.length + 1}/${opts.plan.length}: ${kind}`);
      await inject[kind]();
      const recovered = await waitUntil(
        async () => {
          const now = await counters();
          return (
            now.published !== undefined &&
            now.loaded !== undefined &&
            now.published > (before.published ?? 0) &&
            now.loaded > (before.loaded ?? 0)
          );
        },
        recoveryTimeoutS * 1000,
        500,
      );
      const recoveryS = recovered ? (Date.now() - t) / 1000 : null;
      faults.push({ kind, at: new Date(t).toISOString(), recoveryS });
      log(
        `  ${kind}: ${recoveryS === null ? `NOT recovered within ${recoveryTimeoutS} s` : `recovered in ${recoveryS.toFixed(1)} s`}`,
      );
      await sleep(settleS * 1000);
    }

    // Stop the offer and wait until everything delivered is loaded (bounded).
    p.standin.setRate(0);
    await sleep(1000);
    const ledger = p.standin.ledger();
    const distinct = new Set(ledger).size;
    const malformed = p.standin.malformedLines();
    log(
      `offer stopped: ${ledger.length} posts delivered (${distinct} distinct), ${malformed} malformed lines`,
    );
    const drained = await waitUntil(
      async () => {
        const [a] = await p.query<{ d: number }>(`SELECT COUNT(DISTINCT id) AS d FROM ${p.table('posts')}`);
        const [b] = await p.query<{ n: number }>(
          `SELECT COUNT(*) AS n FROM ${p.table('dead')} WHERE error_stage = 'malformed'`,
        );
        return Number(a.d) >= distinct && Number(b.n) >= malformed;
      },
      (opts.drainTimeoutS ?? 180) * 1000,
      2000,
    );
    const check = await verify(p, ledger, malformed);
    const survivedByKind: Record<string, number> = {};
    for (const f of faults)
      if (f.recoveryS !== null) survivedByKind[f.kind] = (survivedByKind[f.kind] ?? 0) + 1;
    const recoveries = faults.map((f) => f.recoveryS).filter((x): x is number => x !== null);
    const verdict: ChaosVerdict = {
      faults,
      survivedByKind,
      notRecovered: faults.length - recoveries.length,
      postsChecked: check.ledgerDistinct,
      ledgerPosts: check.ledgerPosts,
      rows: check.rows,
      lost: check.lost,
      duplicates: check.duplicates,
      extra: check.extra,
      malformedWritten: check.malformedWritten,
      malformedDeadLetters: check.malformedDeadLetters,
      longestRecoveryS: recoveries.length > 0 ? Math.max(...recoveries) : null,
      drained,
      unexpectedWorkerExits: unexpected,
      lostSample: check.lostSample,
      ok: check.lost === 0 && check.duplicates === 0 && check.malformedDeadLetters >= check.malformedWritten,
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

export function formatVerdict(v: ChaosVerdict): string {
  const lines = ['faults survived by kind:'];
  for (const [k, n] of Object.entries(v.survivedByKind)) lines.push(`  ${k.padEnd(26)} ${n}`);
  if (v.notRecovered > 0) lines.push(`  not recovered within the timeout: ${v.notRecovered}`);
  lines.push(
    `posts checked ${v.postsChecked} (ledger ${v.ledgerPosts} writes incl. duplicates), rows ${v.rows}`,
    `lost ${v.lost}${v.lostSample.length ? ` (e.g. ${v.lostSample.join(', ')})` : ''}, duplicated ${v.duplicates}, extra (backfilled cut lines) ${v.extra}`,
    `malformed lines ${v.malformedWritten}, in dead letters ${v.malformedDeadLetters}`,
    `longest recovery ${v.longestRecoveryS?.toFixed(1) ?? '–'} s; drained before verdict: ${v.drained}; unexpected worker exits ${v.unexpectedWorkerExits}`,
    `verdict: ${v.ok ? 'PASS' : 'FAIL'}`,
  );
  return lines.join('\n');
}
