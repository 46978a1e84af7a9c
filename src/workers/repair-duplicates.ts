/**
 * `npm run repair:duplicates` (on the image: `node dist/src/workers/repair-duplicates.js`): the
 * duplicate repair of issue #13 on demand, from the configuration the workers read. Keeps the
 * earliest-ingested row per post id, records every removed row in `load_repairs` and prints the
 * summary; a rerun changes nothing. The quality workflow runs the same repair by itself whenever its
 * uniqueness check finds duplicates.
 *
 *   --since YYYY-MM-DD   posts created from this UTC day on (default: the uniqueness check's window)
 *   --all                the whole table (a full scan of `posts`' id column)
 *   --max-ids N          duplicated ids per pass (default 5000); passes continue until none are left
 *   --repair-id ID       recorded in load_repairs.repair_id (default: manual-<time>)
 *   --dry-run            report what would be removed; write nothing
 */
import { parseArgs } from 'node:util';
import { createQualityActivities } from '../activities/quality';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { createBigQueryQualityStore } from '../adapters/bigquery/quality-queries';
import { isIsoDate, repairDuplicates } from '../adapters/bigquery/repair';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createLogger, type Logger } from '../observability/logger';

export interface RepairCommand {
  since?: string;
  all: boolean;
  maxIds?: number;
  repairId: string;
  dryRun: boolean;
}

/** Parses the command line; throws with the offending flag on a bad value. */
export function parseRepairArgs(argv: string[], now = new Date()): RepairCommand {
  const { values } = parseArgs({
    args: argv,
    options: {
      since: { type: 'string' },
      all: { type: 'boolean', default: false },
      'max-ids': { type: 'string' },
      'repair-id': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.since !== undefined && !isIsoDate(values.since))
    throw new Error(`--since: expected YYYY-MM-DD, got ${values.since}`);
  if (values.since !== undefined && values.all) throw new Error('--since and --all exclude each other');
  const maxIds = values['max-ids'] === undefined ? undefined : Number(values['max-ids']);
  if (maxIds !== undefined && (!Number.isSafeInteger(maxIds) || maxIds < 1))
    throw new Error(`--max-ids: expected a positive integer, got ${values['max-ids']}`);
  return {
    since: values.since,
    all: values.all ?? false,
    maxIds,
    repairId: values['repair-id'] ?? `manual-${now.toISOString().replace(/[^0-9TZ]/g, '')}`,
    dryRun: values['dry-run'] ?? false,
  };
}

export async function runRepair(config: AppConfig, logger: Logger, cmd: RepairCommand) {
  const bq = createBigQueryClient(config.gcp);
  const activities = createQualityActivities({
    store: createBigQueryQualityStore({ bq, gcp: config.gcp, logger }),
    logger,
    publishedCounts: async () => undefined,
    checks: config.dq.checks,
    repair: (opts) => repairDuplicates(bq, config.gcp, opts, logger),
  });
  return activities.repairDuplicates({
    repairId: cmd.repairId,
    // No since and no asOf: the whole table.
    ...(cmd.all ? {} : cmd.since ? { since: cmd.since } : { asOf: new Date().toISOString() }),
    maxIds: cmd.maxIds,
    dryRun: cmd.dryRun,
  });
}

if (require.main === module) {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'repair' });
  let cmd: RepairCommand;
  try {
    cmd = parseRepairArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(64);
  }
  runRepair(config, logger, cmd).then(
    (summary) => {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      if (summary.unrepairable > 0 || summary.truncated) process.exitCode = 2;
    },
    (err: unknown) => {
      logger.error({ err }, 'duplicate repair failed');
      process.exitCode = 1;
    },
  );
}
