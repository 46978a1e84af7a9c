/**
 * The compliance child's activities, on the stream worker (the only one holding the X token; it has
 * the GCP configuration too, so the BigQuery steps run there as well and the ids never travel
 * between workers or through history):
 * - `resolveComplianceSettings`: the worker's `COMPLIANCE_*` settings, for the supervisor;
 * - `submitComplianceJob`: reads one page of post ids ingested in the run's window from BigQuery,
 *   creates an X compliance job and uploads them (returns the job id, the count and the page cursor);
 * - `complianceJobStatus`: X's status of a job;
 * - `applyComplianceJob`: downloads a complete job's result and applies it to `posts`, journaled in
 *   `compliance_actions` (idempotent: re-running the same job changes nothing).
 * X's errors are classified by `classifyXError`, BigQuery's by the store.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ComplianceApplyReport, ComplianceMode, ComplianceStore } from '../adapters/bigquery/compliance';
import type { ComplianceJobStatus, XComplianceClient } from '../adapters/x/compliance-client';
import { XComplianceRateLimitError } from '../adapters/x/compliance-client';
import { classifyXError } from '../adapters/x/errors';
import type { ComplianceConfig } from '../config';
import { XFailureType } from '../domain/failure-types';
import type { Logger } from '../observability/logger';

export type ComplianceSettings = ComplianceConfig;

export interface SubmitComplianceJobInput {
  /** Names the X job (`<workflow id>-<run>-<page>`, cut to X's 64 characters). */
  name: string;
  /** Window of `posts.ingested_at`: (since, until]; since null = from the beginning. */
  since: string | null;
  until: string;
  /** Ids after this one (id order); '' = from the first. */
  afterId: string;
  maxIds: number;
}

export interface SubmittedComplianceJob {
  /** Null when the window holds no (more) ids: no job was created. */
  jobId: string | null;
  ids: number;
  /** The last id uploaded: the next page starts after it. */
  lastId: string;
  /** The page was full: there may be more ids in the window. */
  more: boolean;
}

export interface ComplianceJobState {
  jobId: string;
  status: ComplianceJobStatus;
}

export interface ApplyComplianceJobInput {
  jobId: string;
  mode: ComplianceMode;
}

export interface ApplyComplianceJobResult extends ComplianceApplyReport {
  /** Lines of X's result file that were not a compliance event. */
  unreadable: number;
}

export interface ComplianceActivityDeps {
  settings: ComplianceSettings;
  logger: Logger;
  store: ComplianceStore;
  /** Undefined when no X token is configured. */
  createClient: () => XComplianceClient | undefined;
  /** The time recorded as `applied_at`. @default () => new Date() */
  clock?: () => Date;
}

/** A job that is not complete cannot be applied; the workflow only applies complete ones. */
export const COMPLIANCE_JOB_NOT_COMPLETE = 'ComplianceJobNotComplete';

export function createComplianceActivities(deps: ComplianceActivityDeps) {
  const { logger, store } = deps;
  const clock = deps.clock ?? (() => new Date());

  function requireClient(): XComplianceClient {
    const client = deps.createClient();
    if (!client) {
      throw ApplicationFailure.nonRetryable(
        'no X bearer token configured on the stream worker: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE',
        XFailureType.auth,
      );
    }
    return client;
  }

  /** X's 429: retryable, after the reset X gave (the retry policy's interval is the floor). */
  const classify = (err: unknown): unknown => {
    if (err instanceof XComplianceRateLimitError) {
      const waitMs = err.resetAtMs ? Math.max(1000, err.resetAtMs - Date.now()) : undefined;
      return ApplicationFailure.create({
        message: err.message,
        type: 'XComplianceRateLimited',
        ...(waitMs ? { nextRetryDelay: waitMs } : {}),
      });
    }
    return classifyXError(err);
  };

  const heartbeat = (details?: unknown) => {
    try {
      Context.current().heartbeat(details);
    } catch {
      // outside an activity (unit tests calling the factory directly)
    }
  };

  return {
    async resolveComplianceSettings(): Promise<ComplianceSettings> {
      return { ...deps.settings };
    },

    async submitComplianceJob(input: SubmitComplianceJobInput): Promise<SubmittedComplianceJob> {
      const client = requireClient();
      const ids = await store.ingestedIds({
        since: input.since,
        until: input.until,
        afterId: input.afterId,
        limit: input.maxIds,
      });
      if (ids.length === 0) return { jobId: null, ids: 0, lastId: input.afterId, more: false };
      heartbeat();
      try {
        const job = await client.createJob(input.name);
        heartbeat();
        await client.upload(job, ids);
        logger.info({ jobId: job.id, ids: ids.length, name: input.name }, 'compliance job submitted');
        return {
          jobId: job.id,
          ids: ids.length,
          lastId: ids[ids.length - 1]!,
          more: ids.length >= input.maxIds,
        };
      } catch (err) {
        throw classify(err);
      }
    },

    async complianceJobStatus(jobId: string): Promise<ComplianceJobState> {
      try {
        const job = await requireClient().getJob(jobId);
        return { jobId, status: job.status };
      } catch (err) {
        throw classify(err);
      }
    },

    async applyComplianceJob(input: ApplyComplianceJobInput): Promise<ApplyComplianceJobResult> {
      const client = requireClient();
      let parsed;
      try {
        const job = await client.getJob(input.jobId);
        if (job.status !== 'complete') {
          throw ApplicationFailure.nonRetryable(
            `X compliance job ${input.jobId} is ${job.status}, not complete: nothing to apply`,
            COMPLIANCE_JOB_NOT_COMPLETE,
          );
        }
        heartbeat('download');
        parsed = await client.download(job);
      } catch (err) {
        throw err instanceof ApplicationFailure ? err : classify(err);
      }
      if (parsed.unreadable > 0)
        logger.warn(
          { jobId: input.jobId, unreadable: parsed.unreadable },
          'lines of the compliance result were not compliance events',
        );
      const report = await store.apply({
        jobId: input.jobId,
        mode: input.mode,
        events: parsed.results,
        appliedAt: clock().toISOString(),
        onProgress: (step) => heartbeat(step),
      });
      logger.info({ ...report }, 'compliance job applied');
      return { ...report, unreadable: parsed.unreadable };
    },
  };
}
