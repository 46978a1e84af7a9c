/**
 * `npm run chaos [-- --rounds 2 --rate 50 --outage 12 --gap-margin 2 --kinds kill-stream-worker,x-drop,...]`
 *
 * The pipeline at a steady rate on a private stack (see dev/bench/private-stack.ts), on X's
 * pay-per-use tier (`X_BACKFILL_MINUTES=0`: every gap is filled by search), while every fault kind is
 * injected `--rounds` times (worker SIGKILLs, Temporal server restarts, X stand-in faults, Pub/Sub and
 * BigQuery outages through a loopback proxy, pause/resume, pause/setRules/resume). `posts` is
 * compared with every post the X stand-in created in the run's window (see run.ts). Prints the faults
 * survived by kind, the gaps (found, filled, unrecoverable, posts filled), the posts read by search
 * and the extra ones read because of the margins, lost, duplicated and the longest recovery; writes
 * artifacts/chaos/<timestamp>.json (the workers' logs beside it); exits 1 on any loss or duplicate
 * (or a malformed line missing from the dead letters).
 */
import '../bench/private-stack';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, stackDown, stackUp } from '../stack/manager';
import { FAULT_KINDS, formatVerdict, runChaos, type FaultKind } from './run';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: process.env.CHAOS_ROUNDS ?? '2' },
    rate: { type: 'string', default: process.env.CHAOS_RATE ?? '50' },
    outage: { type: 'string', default: process.env.CHAOS_OUTAGE_S ?? '12' },
    'gap-margin': { type: 'string', default: process.env.CHAOS_GAP_MARGIN_S ?? '2' },
    kinds: { type: 'string', default: process.env.CHAOS_KINDS ?? FAULT_KINDS.join(',') },
    'keep-stack': { type: 'boolean', default: false },
  },
});
const say = (l: string) => process.stderr.write(`[chaos] ${l}\n`);

async function main(): Promise<number> {
  const kinds = values.kinds.split(',').map((k) => k.trim()) as FaultKind[];
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind ${k}`);
  const plan: FaultKind[] = [];
  for (let r = 0; r < Number(values.rounds); r++) plan.push(...kinds);
  const started = new Date();
  const up = await stackUp({ recycleBigQuery: true, log: say });
  Object.assign(process.env, up.env);
  const dir = join(ROOT, 'artifacts/chaos');
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  try {
    const verdict = await runChaos({
      workerLogDir: join(dir, `${stamp}-logs`),
      plan,
      rate: Number(values.rate),
      outageS: Number(values.outage),
      gapMarginS: Number(values['gap-margin']),
      recycleBigQuery: true,
      log: say,
    });
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${stamp}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        { startedAt: started.toISOString(), finishedAt: new Date().toISOString(), plan, verdict },
        null,
        2,
      ),
    );
    process.stdout.write(`${formatVerdict(verdict)}\nJSON: ${file}\n`);
    return verdict.ok ? 0 : 1;
  } finally {
    if (!values['keep-stack'] && up.started.length > 0) await stackDown({ log: say });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `chaos failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
