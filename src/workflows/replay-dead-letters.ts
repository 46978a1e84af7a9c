/**
 * `replayDeadLetters` (issue #14): replays `posts_dead_letter` into `posts`. Page by page (one
 * `replayDeadLetterPage` activity each), every matching dead letter is re-validated with the loader's
 * code, the ones that now pass are inserted through the loader's insert-if-absent path, and each is
 * journaled in `dead_letter_replays` as replayed, already loaded or still failing (with the reason).
 * Dead letters an earlier replay journaled as replayed or already loaded are skipped, so a second
 * replay adds nothing. The dead-letter table is never changed. With `dryRun` nothing is written and
 * the counts say what would happen.
 *
 * The workflow moves cursors and counts only (the posts stay in the activity); the report is its
 * result and the answer of the `deadLetterReplayProgress` query while it runs. Its workflow id is
 * the replay id (the journal's `replay_id`): `x-ingest-<stream>-dead-letter-replay-<time>` from
 * `npm run dead-letters:replay`. It continues as new when Temporal suggests it, carrying the cursor.
 */
import {
  ApplicationFailure,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  ReplayCounts,
  ReplayExample,
  ReplayPageResult,
  createReplayActivities,
} from '../activities/replay';
import { deadLetterReplayProgressQuery } from './messages';

export interface ReplayDeadLettersInput {
  /** Dead letters first seen at or after this (YYYY-MM-DD or ISO-8601, UTC). Absent = from the start. */
  since?: string;
  /** Dead letters first seen before this (YYYY-MM-DD or ISO-8601, UTC). Absent = up to now. */
  until?: string;
  /** Only dead letters of this `error_stage` (validate, schema_version, schema_conflict, …). */
  stage?: string;
  /** Decide and report only: write nothing. @default false */
  dryRun?: boolean;
  /** Dead letters per page (one activity, one insert into posts). @default 500 */
  batchSize?: number;
  /** Carried across continue-as-new; never set it when starting a replay. */
  resume?: ReplayResume;
}

export interface ReplayResume {
  page: number;
  after: string | null;
  report: DeadLetterReplayReport;
}

/** The result of a replay, and its progress while it runs. */
export interface DeadLetterReplayReport extends ReplayCounts {
  /** The workflow id: `dead_letter_replays.replay_id`. */
  replayId: string;
  dryRun: boolean;
  since: string | null;
  until: string | null;
  stage: string | null;
  /** Pages done. */
  pages: number;
  /** The counts per original `error_stage`. */
  byStage: Record<string, ReplayCounts>;
  /** Columns the replay added to posts (dry run: would add). */
  columnsAdded: string[];
  /** A few dead letters and their outcome, still-failing ones first (at most {@link REPLAY_REPORT_EXAMPLES}). */
  examples: ReplayExample[];
  /** ISO, workflow time. */
  startedAt: string;
  finishedAt: string | null;
  done: boolean;
}

export const DEFAULT_REPLAY_BATCH_SIZE = 500;
export const MAX_REPLAY_BATCH_SIZE = 10_000;
export const REPLAY_REPORT_EXAMPLES = 20;

const { replayDeadLetterPage } = proxyActivities<ReturnType<typeof createReplayActivities>>({
  // A page: one read, one staging load + insert, one look-up, two small inserts; it heartbeats every 5 s.
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: ['InvalidReplayInput'],
  },
});

/** Adds a page's result to the report (a new object; the report's examples stay bounded). */
/** The report of a replay that has examined nothing yet. */
export function emptyReplayReport(
  of: Pick<DeadLetterReplayReport, 'replayId' | 'dryRun' | 'since' | 'until' | 'stage' | 'startedAt'>,
): DeadLetterReplayReport {
  return {
    ...of,
    pages: 0,
    examined: 0,
    replayed: 0,
    alreadyLoaded: 0,
    stillFailing: 0,
    byStage: {},
    columnsAdded: [],
    examples: [],
    finishedAt: null,
    done: false,
  };
}

export function addPage(report: DeadLetterReplayReport, page: ReplayPageResult): DeadLetterReplayReport {
  const add = (a: ReplayCounts, b: ReplayCounts): ReplayCounts => ({
    examined: a.examined + b.examined,
    replayed: a.replayed + b.replayed,
    alreadyLoaded: a.alreadyLoaded + b.alreadyLoaded,
    stillFailing: a.stillFailing + b.stillFailing,
  });
  const byStage: Record<string, ReplayCounts> = { ...report.byStage };
  for (const [stage, counts] of Object.entries(page.byStage)) {
    byStage[stage] = add(
      byStage[stage] ?? { examined: 0, replayed: 0, alreadyLoaded: 0, stillFailing: 0 },
      counts,
    );
  }
  const all = [...report.examples, ...page.examples];
  const examples = [
    ...all.filter((e) => e.outcome === 'still_failing'),
    ...all.filter((e) => e.outcome !== 'still_failing'),
  ].slice(0, REPLAY_REPORT_EXAMPLES);
  return {
    ...report,
    ...add(report, page),
    pages: report.pages + 1,
    byStage,
    columnsAdded: [...new Set([...report.columnsAdded, ...page.columnsAdded])],
    examples,
  };
}

export async function replayDeadLetters(input: ReplayDeadLettersInput = {}): Promise<DeadLetterReplayReport> {
  const info = workflowInfo();
  const batchSize = input.batchSize ?? DEFAULT_REPLAY_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_REPLAY_BATCH_SIZE) {
    throw ApplicationFailure.nonRetryable(
      `batchSize: expected an integer from 1 to ${MAX_REPLAY_BATCH_SIZE}, got ${String(input.batchSize)}`,
      'InvalidReplayInput',
    );
  }
  const dryRun = input.dryRun ?? false;
  let report: DeadLetterReplayReport =
    input.resume?.report ??
    emptyReplayReport({
      replayId: info.workflowId,
      dryRun,
      since: input.since ?? null,
      until: input.until ?? null,
      stage: input.stage ?? null,
      startedAt: new Date().toISOString(),
    });
  setHandler(deadLetterReplayProgressQuery, () => report);

  let page = input.resume?.page ?? 0;
  let after = input.resume?.after ?? null;
  for (;;) {
    const result = await replayDeadLetterPage({
      replayId: report.replayId,
      page,
      after,
      ...(input.since !== undefined ? { since: input.since } : {}),
      ...(input.until !== undefined ? { until: input.until } : {}),
      ...(input.stage !== undefined ? { stage: input.stage } : {}),
      dryRun,
      batchSize,
      startedAt: report.startedAt,
    });
    report = addPage(report, result);
    page++;
    after = result.nextCursor;
    if (after === null) break;
    if (workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof replayDeadLetters>({ ...input, resume: { page, after, report } });
    }
  }
  report = { ...report, finishedAt: new Date().toISOString(), done: true };
  log.info('dead-letter replay done', {
    replayId: report.replayId,
    dryRun,
    examined: report.examined,
    replayed: report.replayed,
    alreadyLoaded: report.alreadyLoaded,
    stillFailing: report.stillFailing,
  });
  return report;
}
