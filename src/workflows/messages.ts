/**
 * The Temporal contract of the pipeline's three workflows: every signal, query and update with its
 * payload types, defined once and shared by the workflows, the workers' activities and the clients
 * (`defineX` is deterministic and side-effect free). Every name here is what operators type in
 * `temporal workflow signal|query|update --name ...`; the names are part of the contract.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LoadBatchResult } from '../activities/bigquery';
import type { DataQualityVerdict, PipelineStatus, ProgressReport } from '../domain/pipeline-status';
import type { ActiveRule, StreamRule } from '../domain/rules';

// --- supervisor (`supervisorWorkflow`): operators ---
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Drain and finish cleanly: closes the X connection, flushes the publisher, stops the children. */
export const stopSignal = defineSignal('stop');
/** Validates the rules with X's dry_run, applies them, returns the applied set; rejects with X's reason. */
export const setRulesUpdate = defineUpdate<ActiveRule[], [StreamRule[]]>('setRules');
export const statusQuery = defineQuery<PipelineStatus>('status');

// --- supervisor: from its activity and children ---
/** Sent by the stream activity every few seconds (see `ProgressReport`). */
export const progressSignal = defineSignal<[ProgressReport]>('progress');
export const dataQualityVerdictSignal = defineSignal<[DataQualityVerdict]>('dataQualityVerdict');

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
