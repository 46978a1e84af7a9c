/**
 * A short chaos run on the e2e stack: the whole pipeline at a low steady rate while the stream worker
 * and the batch worker are SIGKILLed (and restarted), the X stand-in drops the connection mid-line,
 * writes a malformed line and delivers duplicates. The stand-in's ledger must match `posts` exactly
 * (no loss, no duplicate) and the malformed line must be in `posts_dead_letter`. The full run with
 * every fault kind, several times each, is `npm run chaos`.
 */
import { formatVerdict, runChaos } from '../../../dev/chaos/run';

describe('chaos (short)', () => {
  it('loses nothing and duplicates nothing through worker kills and stream faults', async () => {
    const run = Date.now().toString(36);
    const verdict = await runChaos({
      plan: ['kill-stream-worker', 'kill-batch-worker', 'x-drop', 'x-malformed', 'x-duplicates'],
      rate: 20,
      settleS: 2,
      downS: 2,
      recoveryTimeoutS: 90,
      drainTimeoutS: 60,
      // Private task queues and ephemeral health ports: other workers may share this Temporal server.
      env: {
        TEMPORAL_STREAM_TASK_QUEUE: `chaos-stream-${run}`,
        TEMPORAL_BATCH_TASK_QUEUE: `chaos-batch-${run}`,
        STREAM_WORKER_HEALTH_PORT: '0',
        BATCH_WORKER_HEALTH_PORT: '0',
      },
      log: (l) => process.stderr.write(`[chaos] ${l}\n`),
    });
    process.stderr.write(`${formatVerdict(verdict)}\n`);
    expect(verdict.notRecovered).toBe(0);
    expect(verdict.postsChecked).toBeGreaterThan(0);
    expect(verdict.lost).toBe(0);
    expect(verdict.duplicates).toBe(0);
    expect(verdict.malformedWritten).toBeGreaterThan(0);
    expect(verdict.malformedDeadLetters).toBeGreaterThanOrEqual(verdict.malformedWritten);
  }, 240_000);
});
