/**
 * The stream's counters for the quality activities, read from the supervisor's `status` query
 * (`PipelineStatus.publishedByMinute` and `progress.connected`). One query serves a whole run: the
 * status is cached for `cacheMs`. Any failure (supervisor not running, query rejected) reads as
 * "unavailable" (undefined), never as an error: reconciliation then reports "no stream counters".
 */
import type { Client } from '@temporalio/client';
import type { MinuteCount, PipelineStatus } from '../../domain/pipeline-status';
import type { Logger } from '../../observability/logger';
import { createSupervisorStatus } from './supervisor-status';

export interface StreamCounters {
  publishedCounts(fromIso: string, toIso: string): Promise<MinuteCount[] | undefined>;
  /**
   * Whether the stream is connected now and has been since `since` (ISO) at least; undefined when
   * the supervisor cannot say.
   */
  streamConnected(since?: string): Promise<boolean | undefined>;
  /** When the supervisor first started (carried across continue-as-new); undefined when unknown. */
  pipelineStartedAt(): Promise<string | undefined>;
}

export interface SupervisorCountersOptions {
  /** How long one `status` answer is reused. @default 5000 */
  cacheMs?: number;
  logger?: Logger;
  /** Injected for tests. @default Date.now */
  now?: () => number;
}

/** Counters from any `status` source (tests pass a function; the worker, a Temporal client). */
export function createStreamCounters(
  readStatus: () => Promise<PipelineStatus>,
  opts: SupervisorCountersOptions = {},
): StreamCounters {
  const cacheMs = opts.cacheMs ?? 5000;
  const now = opts.now ?? Date.now;
  let cached: { at: number; status: Promise<PipelineStatus | undefined> } | undefined;
  const status = (): Promise<PipelineStatus | undefined> => {
    if (cached && now() - cached.at < cacheMs) return cached.status;
    const p = readStatus().catch((err: unknown) => {
      opts.logger?.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'supervisor status unavailable',
      );
      return undefined;
    });
    cached = { at: now(), status: p };
    return p;
  };
  return {
    async publishedCounts(fromIso, toIso) {
      const s = await status();
      if (!s || !Array.isArray(s.publishedByMinute)) return undefined;
      const from = Date.parse(fromIso);
      const to = Date.parse(toIso);
      return s.publishedByMinute.filter((m) => {
        const t = Date.parse(m.minute);
        return t >= from && t < to;
      });
    },
    async streamConnected(since?: string) {
      const s = await status();
      if (!s) return undefined;
      if (!s.progress.connected) return false;
      if (since === undefined) return true;
      const from = s.progress.connectedSince;
      return from === undefined ? undefined : Date.parse(from) <= Date.parse(since);
    },
    async pipelineStartedAt() {
      return (await status())?.startedAt;
    },
  };
}

/** Counters of the supervisor of `streamName`, through a Temporal client (the shared status reader). */
export function createSupervisorCounters(
  client: Client,
  streamName: string,
  opts: SupervisorCountersOptions = {},
): StreamCounters {
  return createStreamCounters(createSupervisorStatus({ client, streamName }), opts);
}
