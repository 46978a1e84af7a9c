/**
 * The gap-fill child workflow (`x-ingest-<name>-gapfill`): fills, one at a time and oldest first,
 * the gaps the supervisor sends it (`fillGaps` signal, and the unfinished ones in its input when it
 * is (re)started). For each gap it waits until the gap's widened window can be searched (X refuses
 * an `end_time` younger than 10 s), runs the `fillGap` activity on the stream task queue (which
 * holds the X token and the publisher: posts found go to the same topic as the stream's, never
 * through history), and signals the result to the supervisor (`gapFilled`), which keeps the ledger.
 *
 * A fill that fails for good (X's usage cap, refused credentials, an exhausted retry policy) keeps
 * the gap queued and tries again after a back-off that doubles from 1 minute to 1 hour, rather than
 * giving up on posts that can still be recovered: only search itself decides `unrecoverable`.
 * Progress is the `gapFillProgress` query. Continue-as-new carries the queue and the counters.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createGapFillActivities } from '../activities/gap-fill';
import { XFailureType, causeMessage as errorMessage } from '../domain/failure-types';
import { searchableAt, type GapFillProgress, type GapFillResult, type GapReport } from '../domain/gaps';
import { fillGapsSignal, gapFilledSignal, gapFillProgressQuery, type FillGapsRequest } from './messages';

/** Settings and ids only: no secrets, no posts. */
export interface GapFillWorkflowInput {
  /** The supervisor that receives each result. */
  parentWorkflowId: string;
  streamName: string;
  marginMs: number;
  fullArchive: boolean;
  /** Gaps to fill from the start (the supervisor's unfinished ones), with their rules. */
  queue?: QueuedGap[];
  /** Carried across continue-as-new. */
  totals?: Omit<GapFillProgress, 'queued' | 'current'>;
  /** Continue-as-new after this many fills even if Temporal does not suggest it. @default 500 */
  maxFillsPerRun?: number;
}

export interface QueuedGap {
  gap: GapReport;
  rules: FillGapsRequest['rules'];
}

const { fillGap } = proxyActivities<ReturnType<typeof createGapFillActivities>>({
  // A gap of hours at X's search rate limit takes minutes; a rate-limit wait is up to 16 minutes.
  startToCloseTimeout: '2 hours',
  // The activity heartbeats after every page and while it waits: a dead worker is noticed soon.
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [XFailureType.auth, XFailureType.usageCap],
  },
});

const MINUTE = 60_000;

export async function gapFillWorkflow(input: GapFillWorkflowInput): Promise<void> {
  const queue = new Map<string, QueuedGap>((input.queue ?? []).map((q) => [q.gap.id, q]));
  const done = new Set<string>();
  const totals = { filled: 0, unrecoverable: 0, postsFound: 0, postsPublished: 0, ...input.totals };
  let current: GapFillProgress['current'];
  let fillsThisRun = 0;
  const maxFills = input.maxFillsPerRun ?? 500;

  setHandler(fillGapsSignal, (req: FillGapsRequest) => {
    for (const gap of req.gaps) {
      if (!queue.has(gap.id) && !done.has(gap.id)) queue.set(gap.id, { gap, rules: req.rules });
    }
  });
  setHandler(gapFillProgressQuery, () => ({ queued: [...queue.keys()], current, ...totals }));

  const shouldContinueAsNew = () => workflowInfo().continueAsNewSuggested || fillsThisRun >= maxFills;

  let backoffMs = MINUTE;
  for (;;) {
    await condition(() => queue.size > 0 || shouldContinueAsNew());
    if (shouldContinueAsNew()) break;
    const next = oldest(queue);
    const wait = searchableAt(next.gap, input.marginMs) - Date.now();
    current = { id: next.gap.id, since: new Date(Date.now() + Math.max(0, wait)).toISOString() };
    if (wait > 0) await sleep(wait);
    let result: GapFillResult;
    try {
      result = await fillGap({
        supervisorWorkflowId: input.parentWorkflowId,
        gap: next.gap,
        rules: next.rules,
        marginMs: input.marginMs,
        fullArchive: input.fullArchive,
      });
    } catch (err) {
      const error = errorMessage(err);
      log.warn('gap fill failed; the gap stays queued', { gap: next.gap.id, error, retryInMs: backoffMs });
      current = undefined;
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, 60 * MINUTE);
      continue;
    }
    backoffMs = MINUTE;
    queue.delete(next.gap.id);
    done.add(next.gap.id);
    current = undefined;
    fillsThisRun += 1;
    totals[result.state === 'filled' ? 'filled' : 'unrecoverable'] += 1;
    totals.postsFound += result.postsFound;
    totals.postsPublished += result.postsPublished;
    try {
      await getExternalWorkflowHandle(input.parentWorkflowId).signal(gapFilledSignal, result);
    } catch (err) {
      // The supervisor re-sends unfinished gaps when it restarts this child; a fill is idempotent.
      log.warn('could not signal the gap-fill result to the supervisor', { error: errorMessage(err) });
    }
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof gapFillWorkflow>({ ...input, queue: [...queue.values()], totals });
}

function oldest(queue: Map<string, QueuedGap>): QueuedGap {
  let first: QueuedGap | undefined;
  for (const q of queue.values()) {
    if (!first || Date.parse(q.gap.start) < Date.parse(first.gap.start)) first = q;
  }
  return first!;
}
