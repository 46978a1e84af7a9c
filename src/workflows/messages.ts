/**
 * The Temporal contract of the pipeline's three workflows: every signal, query and update with its
 * payload types, defined once and shared by the workflows, the workers' activities and the clients
 * (`defineX` is deterministic and side-effect free). Every name here is what operators type in
 * `temporal workflow signal|query|update --name ...`; the names are part of the contract.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LoadBatchResult } from '../activities/bigquery';
import type { BudgetStatus } from '../domain/budget';
import type { GapFillProgress, GapFillResult, GapReport } from '../domain/gaps';
import type {
  ComplianceJobSummary,
  ComplianceRunSummary,
  ComplianceStatus,
  DataQualityVerdict,
  PipelineStatus,
  ProgressReport,
} from '../domain/pipeline-status';
import type { ActiveRule, StreamRule } from '../domain/rules';

// --- supervisor (`supervisorWorkflow`): operators ---
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Drain and finish cleanly: closes the X connection, flushes the publisher, stops the children. */
export const stopSignal = defineSignal('stop');
/** Validates the rules with X's dry_run, applies them, returns the applied set; rejects with X's reason. */
export const setRulesUpdate = defineUpdate<ActiveRule[], [StreamRule[]]>('setRules');
export const statusQuery = defineQuery<PipelineStatus>('status');
/**
 * Sets the monthly read budget (`{"monthlyPosts": N}`; `null` = no limit) and returns the budget
 * status; a stream held by an exhausted budget resumes when the new budget is not exhausted.
 */
export const setBudgetUpdate = defineUpdate<BudgetStatus, [{ monthlyPosts: number | null }]>('setBudget');

// --- supervisor: from its activity and children ---
/** Sent by the stream activity every few seconds (see `ProgressReport`). */
export const progressSignal = defineSignal<[ProgressReport]>('progress');
export const dataQualityVerdictSignal = defineSignal<[DataQualityVerdict]>('dataQualityVerdict');
/** Sent by the gap-fill child when a gap is filled or found unrecoverable. */
export const gapFilledSignal = defineSignal<[GapFillResult]>('gapFilled');

// --- gap-fill child (`gapFillWorkflow`) ---
/** Gaps to fill (ids already queued or done are ignored) with the rules to search for. */
export interface FillGapsRequest {
  gaps: GapReport[];
  rules: { id?: string; value: string; tag?: string }[];
}
export const fillGapsSignal = defineSignal<[FillGapsRequest]>('fillGaps');
export const gapFillProgressQuery = defineQuery<GapFillProgress>('gapFillProgress');

// --- load child (`loadWorkflow`) ---
/** Counters of a load workflow chain, carried across continue-as-new. */
export interface LoadTotals {
  batches: number;
  messages: number;
  rowsLoaded: number;
  duplicatesSkipped: number;
  deadLetters: number;
  columnsAdded: string[];
  /** Runs of this workflow chained by continue-as-new (1 = first). */
  runs: number;
}

/** The answer of `loadStats`. */
export interface LoadStats extends LoadTotals {
  iterationsThisRun: number;
  lastBatch: LoadBatchResult | null;
  /** ISO time of the last finished batch. */
  lastBatchAt: string | null;
  /** True while a batch is being loaded. */
  loading: boolean;
  stopping: boolean;
}

export const loadStatsQuery = defineQuery<LoadStats>('loadStats');
/**
 * Finish the current batch (never interrupted), then complete. Same name as the supervisor's
 * `stopSignal` (operators type `stop` for either), a different definition.
 */
export const loadStopSignal = defineSignal('stop');

// --- quality child (`qualityWorkflow`) ---
/** Run the data-quality suite now (also reachable through the supervisor). */
export const runChecksSignal = defineSignal('runChecks');
export const runChecksUpdate = defineUpdate<DataQualityVerdict>('runChecksNow');

// --- dead-letter replay (`replayDeadLetters`) ---
/** The replay's report so far (counts, pages, examples; `done` once it finished). */
export const deadLetterReplayProgressQuery =
  defineQuery<import('./replay-dead-letters').DeadLetterReplayReport>('deadLetterReplayProgress');

// --- compliance child (`complianceWorkflow`) ---
/** Run the compliance check now (posts ingested since the last run); returns what the run did. */
export const runComplianceNowUpdate = defineUpdate<ComplianceRunSummary>('runComplianceNow');
/** Download and apply an X compliance job again (idempotent: a job already applied changes nothing). */
export const reapplyComplianceJobUpdate = defineUpdate<ComplianceJobSummary, [{ jobId: string }]>(
  'reapplyComplianceJob',
);
/** The compliance child's watermark, totals, last run, and whether a run is going on. */
export const complianceProgressQuery = defineQuery<
  ComplianceStatus & { running: boolean; nextRunAt?: string }
>('complianceProgress');
/** Sent by the compliance child to the supervisor after each run; the supervisor carries it. */
export const complianceRunSignal = defineSignal<[ComplianceStatus]>('complianceRun');
