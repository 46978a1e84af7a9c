/**
 * Signals, queries and updates of the pipeline's workflows, defined once and shared by the
 * workflows, the workers' activities and the clients (`defineX` is deterministic and side-effect free).
 * Every name here is what operators type in `temporal workflow signal|query|update --name ...`.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  DataQualityVerdict,
  PipelineStatus,
  StreamProgress,
  MinuteCount,
} from '../domain/pipeline-status';
import type { ActiveRule, StreamRule } from '../domain/rules';

// --- supervisor: operators ---
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Drain and finish cleanly: closes the X connection, flushes the publisher, stops the children. */
export const stopSignal = defineSignal('stop');
/** Validates the rules with X's dry_run, applies them, returns the applied set; rejects with X's reason. */
export const setRulesUpdate = defineUpdate<ActiveRule[], [StreamRule[]]>('setRules');
export const statusQuery = defineQuery<PipelineStatus>('status');

// --- supervisor: from its activity and children ---
/** Sent by the stream activity every few seconds with its progress since its previous report. */
export interface ProgressReport {
  /** Activity attempt id, so a retried report is not double counted. */
  reporter: string;
  sequence: number;
  progress: StreamProgress;
  /** Deltas since the previous report of this reporter. */
  publishedByMinute: MinuteCount[];
}
export const progressSignal = defineSignal<[ProgressReport]>('progress');
export const dataQualityVerdictSignal = defineSignal<[DataQualityVerdict]>('dataQualityVerdict');

// --- quality child ---
/** Run the data-quality suite now (also reachable through the supervisor). */
export const runChecksSignal = defineSignal('runChecks');
export const runChecksUpdate = defineUpdate<DataQualityVerdict>('runChecksNow');
