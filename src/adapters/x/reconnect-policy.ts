/**
 * X's reconnect rules for the filtered stream, as a pure, clock-free policy: the caller passes the
 * failure and the current time, the policy returns the delay before the next connect (or "stop").
 *
 * The rules (X "Handling disconnections"):
 * - an established connection that drops (network error, stall, server close, in-stream
 *   operational disconnect): reconnect immediately, once;
 * - if that fails, by class of failure:
 *   - network (TCP/TLS error, reset, stall, drop): linear, +250 ms per attempt, capped at 16 s;
 *   - HTTP error (5xx, 4xx other than 401/403/429): exponential from 5 s, doubling, capped at 320 s;
 *   - HTTP 429: exponential from 60 s, doubling (X states no cap), and never before
 *     `x-rate-limit-reset` when X sent it;
 *   - HTTP 401/403: configuration error, stop.
 *
 * **Reset rule.** The schedule (per-class attempt counters and the one immediate retry) resets only
 * when a connection has stayed established for at least `stableAfterMs` (default 30 s, longer than
 * one keep-alive interval, so the connection has proved it delivers). A connection that is accepted
 * and then dropped at once does *not* reset the schedule: `twitter-api-v2` resets after every
 * successful reconnect, which turns an accept-then-drop server into a tight reconnect loop.
 */

export type FailureClass = 'network' | 'http' | 'rate-limit' | 'auth';

export type Failure =
  | { kind: 'network' }
  | { kind: 'http'; status?: number }
  /** `resetEpochSeconds`: the `x-rate-limit-reset` header, when X sent it. */
  | { kind: 'rate-limit'; resetEpochSeconds?: number }
  | { kind: 'auth'; status: number };

export interface ReconnectPolicyOptions {
  /** A connection up at least this long resets the schedule. Default 30 000 ms. */
  stableAfterMs?: number;
  /** Network back-off step and cap. Defaults 250 ms and 16 000 ms. */
  networkStepMs?: number;
  networkMaxMs?: number;
  /** HTTP back-off start and cap. Defaults 5 000 ms and 320 000 ms. */
  httpInitialMs?: number;
  httpMaxMs?: number;
  /** 429 back-off start (default 60 000 ms) and cap (default: none, as X states none). */
  rateLimitInitialMs?: number;
  rateLimitMaxMs?: number;
}

/** The attempt history the policy needs; plain data so it can be logged or checkpointed. */
export interface ReconnectHistory {
  /** Consecutive failures per class since the schedule was last reset. */
  network: number;
  http: number;
  rateLimit: number;
  /** Whether the one immediate retry after a dropped established connection was used. */
  immediateRetryUsed: boolean;
}

export type ReconnectDecision =
  | { action: 'retry'; delayMs: number; failure: FailureClass; attempt: number; immediate: boolean }
  | { action: 'stop'; failure: 'auth'; status: number };

export const initialHistory = (): ReconnectHistory => ({
  network: 0,
  http: 0,
  rateLimit: 0,
  immediateRetryUsed: false,
});

const DEFAULTS: Required<ReconnectPolicyOptions> = {
  stableAfterMs: 30_000,
  networkStepMs: 250,
  networkMaxMs: 16_000,
  httpInitialMs: 5_000,
  httpMaxMs: 320_000,
  rateLimitInitialMs: 60_000,
  rateLimitMaxMs: Number.POSITIVE_INFINITY,
};

/** `base * 2^(n-1)` without overflowing to Infinity for large n. */
function doubling(base: number, n: number, max: number): number {
  const exp = Math.min(n - 1, 52);
  return Math.min(base * 2 ** exp, max);
}

/**
 * Decides what to do after a failure.
 * @param history the history before this failure (not mutated)
 * @param failure what happened
 * @param connectedForMs how long the connection was established before it failed; `undefined`
 *   when the failure happened while connecting (no 200 response)
 * @param nowMs current time in epoch ms (only used for `x-rate-limit-reset`)
 * @returns the decision and the history to pass next time
 */
export function decideReconnect(
  history: ReconnectHistory,
  failure: Failure,
  connectedForMs: number | undefined,
  nowMs: number,
  options: ReconnectPolicyOptions = {},
): { decision: ReconnectDecision; history: ReconnectHistory } {
  const o = { ...DEFAULTS, ...options };
  let h = history;
  if (connectedForMs !== undefined && connectedForMs >= o.stableAfterMs) h = initialHistory();

  if (failure.kind === 'auth') {
    return { decision: { action: 'stop', failure: 'auth', status: failure.status }, history: h };
  }
  if (connectedForMs !== undefined && !h.immediateRetryUsed) {
    return {
      decision: { action: 'retry', delayMs: 0, failure: failure.kind, attempt: 0, immediate: true },
      history: { ...h, immediateRetryUsed: true },
    };
  }
  switch (failure.kind) {
    case 'network': {
      const n = h.network + 1;
      const delayMs = Math.min(o.networkStepMs * n, o.networkMaxMs);
      return {
        decision: { action: 'retry', delayMs, failure: 'network', attempt: n, immediate: false },
        history: { ...h, network: n },
      };
    }
    case 'http': {
      const n = h.http + 1;
      const delayMs = doubling(o.httpInitialMs, n, o.httpMaxMs);
      return {
        decision: { action: 'retry', delayMs, failure: 'http', attempt: n, immediate: false },
        history: { ...h, http: n },
      };
    }
    case 'rate-limit': {
      const n = h.rateLimit + 1;
      let delayMs = doubling(o.rateLimitInitialMs, n, o.rateLimitMaxMs);
      if (failure.resetEpochSeconds !== undefined && Number.isFinite(failure.resetEpochSeconds)) {
        delayMs = Math.max(delayMs, failure.resetEpochSeconds * 1000 - nowMs);
      }
      return {
        decision: { action: 'retry', delayMs, failure: 'rate-limit', attempt: n, immediate: false },
        history: { ...h, rateLimit: n },
      };
    }
  }
}

/** Stateful convenience wrapper over {@link decideReconnect} (still clock-free). */
export class ReconnectPolicy {
  private h: ReconnectHistory = initialHistory();
  constructor(private readonly options: ReconnectPolicyOptions = {}) {}

  next(failure: Failure, connectedForMs: number | undefined, nowMs: number): ReconnectDecision {
    const { decision, history } = decideReconnect(this.h, failure, connectedForMs, nowMs, this.options);
    this.h = history;
    return decision;
  }

  get history(): Readonly<ReconnectHistory> {
    return this.h;
  }

  reset(): void {
    this.h = initialHistory();
  }
}
