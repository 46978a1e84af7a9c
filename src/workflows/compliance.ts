/**
 * The compliance child workflow (`x-ingest-<name>-compliance`, on the stream task queue, where the
 * X token is): every `intervalMs` (default daily) it checks with X's batch compliance the posts
 * ingested since its last run and applies X's answer to `posts` (delete, or redact text and author),
 * journaled in `compliance_actions`.
 *
 * One run covers the window (watermark, now − `settleMs`] of `posts.ingested_at` (a load batch
 * stamps `ingested_at` before its insert commits, so the newest minutes are left to the next run).
 * The window's ids are split into pages of `maxIdsPerJob`, in id order; each page is one X job,
 * run one after another (X allows one running job per type): submit (read the page, create the job,
 * upload), poll its status (30 s doubling to 5 minutes), apply its result. Only ids, counts and job
 * ids pass through history; the activities move the ids between BigQuery and X.
 *
 * The watermark moves to the window's end only when every job of the run was applied; a run that
 * fails (a job `failed` or `expired`, an activity out of retries) is reported and the next run
 * checks the same window again (re-applying is idempotent). After each run the state is signalled
 * to the supervisor, which hands it back when it restarts this child; continue-as-new carries it too.
 *
 * Operators: `runComplianceNow` (update: run now, returns the run), `reapplyComplianceJob` (update:
 * apply a job's result again), `complianceProgress` (query).
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
  type RetryPolicy,
} from '@temporalio/workflow';
import type { ApplyComplianceJobResult, createComplianceActivities } from '../activities/compliance';
import { XFailureType, causeMessage } from '../domain/failure-types';
import type { ComplianceJobSummary, ComplianceRunSummary, ComplianceStatus } from '../domain/pipeline-status';
import {
  complianceProgressQuery,
  complianceRunSignal,
  reapplyComplianceJobUpdate,
  runComplianceNowUpdate,
} from './messages';

/** Settings and state only: no secrets, no posts. */
export interface ComplianceWorkflowInput {
  streamName: string;
  /** The supervisor, told the state after each run. */
  parentWorkflowId?: string;
  intervalMs: number;
  mode: 'delete' | 'redact';
  maxIdsPerJob: number;
  /** Rows ingested less than this long ago are left to the next run. @default 600 000 (10 minutes) */
  settleMs?: number;
  /** First wait between status checks of an X job (doubles up to 5 minutes). @default 30 000 */
  pollIntervalMs?: number;
  /** Carried across continue-as-new and restarts. */
  state?: ComplianceStatus;
  /** When the next scheduled run is due (ISO); default: one interval after the start. */
  nextRunAt?: string;
  /** Continue-as-new after this many runs even if Temporal does not suggest it. @default 100 */
  maxRunsPerExecution?: number;
}

/** `COMPLIANCE_JOB_NOT_COMPLETE` of activities/compliance.ts (workflows import no activity values). */
const JOB_NOT_COMPLETE = 'ComplianceJobNotComplete';

const retry: RetryPolicy = {
  initialInterval: '5 seconds',
  backoffCoefficient: 2,
  maximumInterval: '5 minutes',
  maximumAttempts: 10,
  nonRetryableErrorTypes: [XFailureType.auth, XFailureType.usageCap, JOB_NOT_COMPLETE],
};

const { submitComplianceJob, complianceJobStatus } = proxyActivities<
  ReturnType<typeof createComplianceActivities>
>({
  // Reads one page of ids (a scan of posts' id and ingested_at) and uploads it.
  startToCloseTimeout: '20 minutes',
  retry,
});

const { applyComplianceJob } = proxyActivities<ReturnType<typeof createComplianceActivities>>({
  startToCloseTimeout: '2 hours',
  // Heartbeats between the download and every statement.
  heartbeatTimeout: '10 minutes',
  retry,
});

const MAX_POLL_MS = 5 * 60_000;

export async function complianceWorkflow(input: ComplianceWorkflowInput): Promise<void> {
  const settleMs = input.settleMs ?? 10 * 60_000;
  const pollMs = input.pollIntervalMs ?? 30_000;
  const maxRuns = input.maxRunsPerExecution ?? 100;
  const state: ComplianceStatus = {
    watermark: null,
    runs: 0,
    idsChecked: 0,
    events: 0,
    rowsAffected: 0,
    ...input.state,
  };
  let nextRunAt = input.nextRunAt ? Date.parse(input.nextRunAt) : Date.now() + input.intervalMs;
  let running = false;
  let runsThisExecution = 0;
  /** Runs started / finished in this execution, and the first run an update waits for. */
  let started = 0;
  let finished = 0;
  let requested = 0;
  const summaries = new Map<number, ComplianceRunSummary>();

  setHandler(complianceProgressQuery, () => ({
    ...state,
    running,
    nextRunAt: new Date(nextRunAt).toISOString(),
  }));

  setHandler(runComplianceNowUpdate, async () => {
    const ticket = started + 1;
    requested = Math.max(requested, ticket);
    await condition(() => finished >= ticket);
    return summaries.get(ticket)!;
  });

  setHandler(
    reapplyComplianceJobUpdate,
    async ({ jobId }) => {
      await condition(() => !running);
      running = true;
      try {
        const r = await applyComplianceJob({ jobId, mode: input.mode });
        return jobSummary(jobId, 0, 'complete', r);
      } finally {
        running = false;
      }
    },
    {
      validator: (arg: { jobId: string }) => {
        if (!arg || typeof arg.jobId !== 'string' || !/^\d{1,19}$/.test(arg.jobId))
          throw new Error('reapplyComplianceJob expects {"jobId": "<X compliance job id>"}');
      },
    },
  );

  const shouldContinueAsNew = () => workflowInfo().continueAsNewSuggested || runsThisExecution >= maxRuns;

  async function runOnce(n: number): Promise<ComplianceRunSummary> {
    const startedAt = new Date().toISOString();
    const since = state.watermark;
    let until = new Date(Date.now() - settleMs).toISOString();
    if (since !== null && Date.parse(until) < Date.parse(since)) until = since;
    const run: ComplianceRunSummary = {
      run: n,
      startedAt,
      finishedAt: startedAt,
      since,
      until,
      mode: input.mode,
      ok: true,
      jobs: [],
      idsChecked: 0,
      events: 0,
      rowsAffected: 0,
    };
    let afterId = '';
    try {
      for (let page = 0; since === null || until > since; page++) {
        const sub = await submitComplianceJob({
          name: `${input.streamName}-compliance-${n}-${page}`.slice(0, 64),
          since,
          until,
          afterId,
          maxIds: input.maxIdsPerJob,
        });
        if (sub.jobId === null) break;
        const job: ComplianceJobSummary = { jobId: sub.jobId, ids: sub.ids, status: 'in_progress' };
        run.jobs.push(job);
        run.idsChecked += sub.ids;
        let delay = pollMs;
        for (;;) {
          job.status = (await complianceJobStatus(sub.jobId)).status;
          if (job.status !== 'created' && job.status !== 'in_progress') break;
          await sleep(delay);
          delay = Math.min(delay * 2, MAX_POLL_MS);
        }
        if (job.status !== 'complete') throw new Error(`X compliance job ${sub.jobId} ended ${job.status}`);
        const applied = await applyComplianceJob({ jobId: sub.jobId, mode: input.mode });
        Object.assign(job, jobSummary(sub.jobId, sub.ids, 'complete', applied));
        run.events += applied.events;
        run.rowsAffected += applied.rowsAffected;
        afterId = sub.lastId;
        if (!sub.more) break;
      }
      state.watermark = until;
    } catch (err) {
      run.ok = false;
      run.error = causeMessage(err);
      log.warn('compliance run failed; the next run checks the same window again', {
        run: n,
        error: run.error,
      });
    }
    run.finishedAt = new Date().toISOString();
    state.runs += 1;
    state.idsChecked += run.idsChecked;
    state.events += run.events;
    state.rowsAffected += run.rowsAffected;
    state.lastRun = run;
    return run;
  }

  for (;;) {
    await condition(() => requested > started || shouldContinueAsNew(), Math.max(1, nextRunAt - Date.now()));
    if (shouldContinueAsNew() && requested <= started) break;
    if (requested <= started && Date.now() < nextRunAt) continue;
    await condition(() => !running);
    running = true;
    const n = ++started;
    let summary: ComplianceRunSummary;
    try {
      summary = await runOnce(state.runs + 1);
    } finally {
      running = false;
    }
    summaries.set(n, summary);
    finished = n;
    runsThisExecution += 1;
    nextRunAt = Date.now() + input.intervalMs;
    if (input.parentWorkflowId) {
      try {
        await getExternalWorkflowHandle(input.parentWorkflowId).signal(complianceRunSignal, { ...state });
      } catch (err) {
        log.warn('could not signal the compliance state to the supervisor', { error: causeMessage(err) });
      }
    }
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof complianceWorkflow>({
    ...input,
    state,
    nextRunAt: new Date(nextRunAt).toISOString(),
  });
}

function jobSummary(
  jobId: string,
  ids: number,
  status: string,
  r: ApplyComplianceJobResult,
): ComplianceJobSummary {
  return { jobId, ids, status, events: r.events, journaled: r.journaled, rowsAffected: r.rowsAffected };
}
