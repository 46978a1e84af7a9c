/**
 * A short chaos run on the e2e stack, on X's pay-per-use tier (`X_BACKFILL_MINUTES=0`: X replays
 * nothing after a reconnect): the whole pipeline at a low steady rate while the stream worker and the
 * batch worker are SIGKILLed (and restarted), the X stand-in drops the connection mid-line, the
 * operator pauses and resumes, the stand-in writes a malformed line and delivers duplicates. Every
 * post the stand-in created in the run's window (its world ledger, delivered or not; see
 * dev/chaos/run.ts for the window) must be in `posts` exactly once, the gaps the faults left must
 * all be filled by search, and the malformed line must be in `posts_dead_letter`. The full run with
 * every fault kind is `npm run chaos`.
 */
import { join } from 'node:path';
import { formatVerdict, runChaos } from '../../../dev/chaos/run';
import { ROOT } from '../../../dev/stack/manager';

describe('chaos (short)', () => {
  it('loses nothing the stand-in created and duplicates nothing through kills, drops and a pause', async () => {
    const run = Date.now().toString(36);
    const verdict = await runChaos({
      plan: [
        'kill-stream-worker',
        'x-drop',
        'pause-resume',
        'kill-batch-worker',
        'x-malformed',
        'x-duplicates',
      ],
      rate: 20,
      settleS: 2,
      downS: 2,
      pauseS: 3,
      recoveryTimeoutS: 90,
      gapTimeoutS: 90,
      drainTimeoutS: 60,
      gapMarginS: 2,
      // Private task queues and ephemeral health ports: other workers may share this Temporal server.
      env: {
        TEMPORAL_STREAM_TASK_QUEUE: `chaos-stream-${run}`,
        TEMPORAL_BATCH_TASK_QUEUE: `chaos-batch-${run}`,
        STREAM_WORKER_HEALTH_PORT: '0',
        BATCH_WORKER_HEALTH_PORT: '0',
      },
      // The workers' logs, to trace a lost id to the fault that lost it.
      workerLogDir: join(ROOT, 'artifacts/chaos', `e2e-${run}-logs`),
      log: (l) => process.stderr.write(`[chaos] ${l}\n`),
    });
    process.stderr.write(`${formatVerdict(verdict)}\n`);
    expect(verdict.notRecovered).toBe(0);
    expect(verdict.expected).toBeGreaterThan(0);
    // The stream cannot have delivered everything: the kill, the drop and the pause left gaps.
    expect(verdict.expectedDelivered).toBeLessThan(verdict.expected);
    expect(verdict.gapsSettled).toBe(true);
    expect(verdict.gaps.found).toBeGreaterThanOrEqual(3);
    expect(verdict.gaps.filled).toBe(verdict.gaps.found);
    expect(verdict.gaps.unrecoverable).toBe(0);
    expect(verdict.gaps.postsFilled).toBeGreaterThan(0);
    expect(verdict.lostSample).toEqual([]);
    expect(verdict.lost).toBe(0);
    expect(verdict.duplicates).toBe(0);
    expect(verdict.unknown).toBe(0);
    expect(verdict.malformedWritten).toBeGreaterThan(0);
    expect(verdict.malformedDeadLetters).toBeGreaterThanOrEqual(verdict.malformedWritten);
  }, 300_000);
});
