/**
 * `npm run dead-letters:replay` (on the image: `node dist/src/workers/replay-dead-letters.js`): starts
 * the `replayDeadLetters` workflow on the batch task queue, from the configuration the workers read,
 * waits for it and prints its report (JSON). The batch worker runs it. What the replay does is in
 * `src/workflows/replay-dead-letters.ts`; the dead-letter table is never changed.
 *
 *   --since D        dead letters first seen at or after D (YYYY-MM-DD or ISO-8601 with a zone, UTC)
 *   --until D        dead letters first seen before D
 *   --stage S        only this error_stage (malformed, decode, validate, schema_version, schema_conflict,
 *                    bigquery_insert)
 *   --dry-run        decide and report only: write nothing
 *   --batch-size N   dead letters per page (default 500)
 *   --replay-id ID   the workflow id (default x-ingest-<stream>-dead-letter-replay-<time>)
 *
 * Exit status: 0 when the replay finished (whatever it found), 64 on a bad flag, 1 when it failed.
 */
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { checkDeadLetterFilter } from '../adapters/bigquery/dead-letters';
import { connectClient } from '../adapters/temporal/connection';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createLogger } from '../observability/logger';
import type {
  DeadLetterReplayReport,
  ReplayDeadLettersInput,
  replayDeadLetters,
} from '../workflows/replay-dead-letters';

export interface ReplayCommand {
  input: ReplayDeadLettersInput;
  /** The workflow id, also the journal's replay_id. */
  replayId: string;
}

const MAX_BATCH_SIZE = 10_000;

/** The default replay id: the stream's workflow prefix, then the time (UTC, to the millisecond). */
export function replayWorkflowId(streamName: string, now: Date, dryRun: boolean): string {
  const time = now.toISOString().replace(/[^0-9TZ]/g, '');
  return `x-ingest-${streamName}-dead-letter-replay-${dryRun ? 'dry-run-' : ''}${time}`;
}

/** Parses the command line; throws one message naming every bad flag. */
export function parseReplayArgs(argv: string[], streamName: string, now = new Date()): ReplayCommand {
  const { values } = parseArgs({
    args: argv,
    options: {
      since: { type: 'string' },
      until: { type: 'string' },
      stage: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'batch-size': { type: 'string' },
      'replay-id': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const problems = checkDeadLetterFilter({
    since: values.since,
    until: values.until,
    stage: values.stage,
  }).map((p) => `--${p}`);
  const batchSize = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
  if (
    batchSize !== undefined &&
    (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE)
  )
    problems.push(
      `--batch-size: expected an integer from 1 to ${MAX_BATCH_SIZE}, got ${values['batch-size']}`,
    );
  const replayId = values['replay-id'];
  if (replayId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(replayId))
    problems.push(`--replay-id: expected letters, digits, . _ : - (at most 200), got ${replayId}`);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const dryRun = values['dry-run'] ?? false;
  return {
    input: {
      ...(values.since !== undefined ? { since: values.since } : {}),
      ...(values.until !== undefined ? { until: values.until } : {}),
      ...(values.stage !== undefined ? { stage: values.stage } : {}),
      dryRun,
      ...(batchSize !== undefined ? { batchSize } : {}),
    },
    replayId: replayId ?? replayWorkflowId(streamName, now, dryRun),
  };
}

/** Starts the replay on the batch task queue and waits for its report. */
export async function runReplay(
  client: Client,
  config: AppConfig,
  cmd: ReplayCommand,
  onStarted?: (workflowId: string) => void,
): Promise<DeadLetterReplayReport> {
  const handle = await client.workflow.start<typeof replayDeadLetters>('replayDeadLetters', {
    workflowId: cmd.replayId,
    taskQueue: config.temporal.batchTaskQueue,
    args: [cmd.input],
  });
  onStarted?.(handle.workflowId);
  return handle.result();
}

if (require.main === module) {
  const config = loadConfigOrExit();
  const logger = createLogger({
    level: config.logLevel,
    format: config.logFormat,
    name: 'dead-letter-replay',
  });
  let cmd: ReplayCommand;
  try {
    cmd = parseReplayArgs(process.argv.slice(2), config.x.streamName);
  } catch (err) {
    process.stderr.write(`dead-letters:replay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.stderr.write(
      'usage: npm run dead-letters:replay -- [--since D] [--until D] [--stage S] [--dry-run] [--batch-size N] [--replay-id ID]\n',
    );
    process.exit(64);
  }
  const main = async () => {
    const client = await connectClient(config.temporal);
    try {
      return await runReplay(client, config, cmd, (id) =>
        logger.info(
          { workflowId: id, taskQueue: config.temporal.batchTaskQueue, ui: config.temporal.uiUrl },
          'dead-letter replay started; the batch worker runs it',
        ),
      );
    } finally {
      await client.connection.close();
    }
  };
  main().then(
    (report) => {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    },
    (err: unknown) => {
      logger.error({ err }, 'dead-letter replay failed');
      process.exitCode = 1;
    },
  );
}
