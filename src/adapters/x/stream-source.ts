/**
 * The X filtered-stream source: owns one HTTP connection at a time to
 * `${baseUrl}/2/tweets/search/stream`, reads the body itself (Node `http`/`https`, see
 * `stream-reader.ts` for why not `twitter-api-v2`'s parser), normalises every line and hands it to
 * `onMessage`, and reconnects by X's rules (`reconnect-policy.ts`) until aborted.
 *
 * The parts: this file is the reconnect loop and the counters; `stream-connection.ts` is one
 * connection's state machine (connecting, connected, closing, settled); `delivery-queue.ts` hands
 * received lines to the consumer with back-pressure; `domain/stream-line.ts` says what a line is.
 *
 * - Back-pressure: when `onMessage` returns a promise the response is paused until it settles
 *   (and the stall timer with it: our own pause is not a stall).
 * - Stall: no bytes for `stallTimeoutMs` (also while waiting for the response headers) = drop and
 *   reconnect, reason `stall`.
 * - In-stream `operational-disconnect` messages are logged with their `disconnect_type`; X closes
 *   the connection after them and the source reconnects (reason `operational-disconnect`).
 * - A line cut by a dropped connection, and an in-stream error message that is not an
 *   `operational-disconnect`, are emitted as `malformed` with the reason (never dropped silently).
 * - Backfill (Enterprise): `backfillMinutes` in the options is the cap (X_BACKFILL_MINUTES, 0 = off);
 *   each reconnect asks for the minutes since the last byte received, rounded up, at most the cap.
 *   `run({ backfillMinutes })` asks for that much on the first connect of the run (e.g. after a
 *   worker restart), also capped.
 * - Closing (the signal aborts): the connection is half-closed and what X already sent keeps being
 *   read and handed over until X closes its side or `closeDrainMs` passes, so the posts in flight
 *   when an operator pauses are published, not lost. Lines still not handed over at the deadline
 *   are counted and logged at error level (never dropped silently).
 * - HTTP 401/403: `run` rejects with {@link XAuthError}. The bearer token is sent in the
 *   `authorization` header only; it is never logged nor put in an error.
 * - HTTP 429 `usage-capped` or 402 (X's usage cap / credits): `run` rejects with
 *   {@link XUsageCapError} instead of backing off and retrying every minute.
 */
import type { Agent } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { XConfig } from '../../config';
import type { MalformedMessage, Post } from '../../domain/post';
import type { Logger } from '../../observability/logger';
import { XAuthError, XUsageCapError } from './errors';
import { ReconnectPolicy, type ReconnectPolicyOptions } from './reconnect-policy';
import { connectOnce, type ConnectionOutcome } from './stream-connection';

export { XAuthError, XUsageCapError } from './errors';

export type StreamMessage = { kind: 'post'; post: Post } | { kind: 'malformed'; message: MalformedMessage };

/** Why a connection ended (the key of `reconnectsByReason`). */
export type DisconnectReason =
  'stall' | 'network' | 'closed' | 'operational-disconnect' | 'http' | 'rate-limit' | 'auth';

export type StreamEvent =
  | { type: 'connecting'; attempt: number; backfillMinutes: number }
  | { type: 'connected'; attempt: number; backfillMinutes: number }
  | {
      type: 'disconnected';
      reason: DisconnectReason;
      /** How long the connection was established; undefined = failed while connecting. */
      connectedForMs?: number;
      status?: number;
      disconnectType?: string;
      error?: string;
    }
  | { type: 'reconnect-scheduled'; reason: DisconnectReason; delayMs: number; attempt: number };

export interface XStreamSourceOptions {
  /** `X_API_BASE_URL`, without a trailing slash. */
  baseUrl: string;
  /** Secret. */
  bearerToken: string;
  tweetFields?: readonly string[];
  expansions?: readonly string[];
  userFields?: readonly string[];
  /** No bytes for this long = stall. Default 20 000 ms (X's keep-alive is every 20 s at most). */
  stallTimeoutMs?: number;
  /** On abort: keep reading what was already sent for up to this long. Default 2000 ms; 0 = close at once. */
  closeDrainMs?: number;
  /** Maximum backfill minutes to request on reconnect (0-5; 0 = never ask). Default 0. */
  backfillMinutes?: number;
  reconnect?: ReconnectPolicyOptions;
  logger: Logger;
  /** HTTP agent; default: a fresh socket per connection. */
  agent?: Agent;
}

export interface RunOptions {
  signal: AbortSignal;
  onMessage: (m: StreamMessage) => Promise<void> | void;
  onEvent?: (e: StreamEvent) => void;
  /** Backfill to request on the first connect of this run (capped by the source's `backfillMinutes`). */
  backfillMinutes?: number;
  /** Waits between connects; injectable for tests. Must resolve (not reject) when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Clock (epoch ms); injectable for tests. */
  now?: () => number;
}

export interface XStreamStats {
  connected: boolean;
  /** Successful (HTTP 200) connects. */
  connects: number;
  /** Connect attempts after the first one of a run. */
  reconnects: number;
  reconnectsByReason: Record<string, number>;
  keepAlives: number;
  linesReceived: number;
  posts: number;
  malformed: number;
  bytesReceived: number;
  /** Lines received but not handed over because the close deadline passed (logged at error level). */
  linesDroppedAtClose: number;
  lastError?: string;
  lastDisconnectType?: string;
  lastConnectedAt?: string;
  lastMessageAt?: string;
}

const DEFAULT_STALL_MS = 20_000;
const DEFAULT_CLOSE_DRAIN_MS = 2_000;

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // aborted
  }
}

function clampBackfill(n: number | undefined): number {
  if (n === undefined || !Number.isFinite(n) || n <= 0) return 0;
  return Math.min(5, Math.ceil(n));
}

export class XStreamSource {
  static readonly PATH = '/2/tweets/search/stream';
  private readonly stallTimeoutMs: number;
  private readonly backfillCap: number;
  private readonly log: Logger;
  private running = false;
  private s: XStreamStats = {
    connected: false,
    connects: 0,
    reconnects: 0,
    reconnectsByReason: {},
    keepAlives: 0,
    linesReceived: 0,
    posts: 0,
    malformed: 0,
    bytesReceived: 0,
    linesDroppedAtClose: 0,
  };
  private lastByteAt: number | undefined;

  constructor(private readonly opts: XStreamSourceOptions) {
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_MS;
    this.backfillCap = clampBackfill(opts.backfillMinutes);
    this.log = opts.logger;
  }

  /** A snapshot of the counters. */
  stats(): XStreamStats {
    return { ...this.s, reconnectsByReason: { ...this.s.reconnectsByReason } };
  }

  /** The stream URL for a connect (no credentials in it; safe to log). */
  streamUrl(backfillMinutes = 0): URL {
    const url = new URL(this.opts.baseUrl.replace(/\/+$/, '') + XStreamSource.PATH);
    const q = url.searchParams;
    if (this.opts.tweetFields?.length) q.set('tweet.fields', this.opts.tweetFields.join(','));
    if (this.opts.expansions?.length) q.set('expansions', this.opts.expansions.join(','));
    if (this.opts.userFields?.length) q.set('user.fields', this.opts.userFields.join(','));
    if (backfillMinutes > 0) q.set('backfill_minutes', String(backfillMinutes));
    return url;
  }

  /**
   * Connects and keeps reconnecting until `signal` aborts (resolves promptly, socket closed) or X
   * refuses the credentials (rejects with {@link XAuthError}). Rejects with the consumer's error if
   * `onMessage` throws or rejects (the connection is closed first).
   */
  async run(opts: RunOptions): Promise<void> {
    if (this.running) throw new Error('XStreamSource.run() is already running: X allows one connection');
    this.running = true;
    const now = opts.now ?? Date.now;
    const sleep = opts.sleep ?? abortableSleep;
    const policy = new ReconnectPolicy(this.opts.reconnect);
    let backfill = Math.min(this.backfillCap, clampBackfill(opts.backfillMinutes));
    let attempt = 0;
    let lastReason: DisconnectReason | undefined;
    try {
      while (!opts.signal.aborted) {
        if (lastReason !== undefined) {
          this.s.reconnects++;
          this.s.reconnectsByReason[lastReason] = (this.s.reconnectsByReason[lastReason] ?? 0) + 1;
        }
        attempt++;
        opts.onEvent?.({ type: 'connecting', attempt, backfillMinutes: backfill });
        const outcome = await this.connectOnce(opts, attempt, backfill, now);
        if (outcome.kind === 'aborted') return;
        if (outcome.kind === 'consumer-error') throw outcome.error;

        lastReason = outcome.reason;
        this.s.lastError = [outcome.reason, outcome.status, outcome.detail ?? outcome.error]
          .filter((x) => x !== undefined)
          .join(': ');
        opts.onEvent?.({
          type: 'disconnected',
          reason: outcome.reason,
          connectedForMs: outcome.connectedForMs,
          status: outcome.status,
          error: outcome.detail ?? outcome.error,
        });
        if (outcome.usageCapped) {
          const err = new XUsageCapError(outcome.status ?? 429, outcome.detail, `GET ${XStreamSource.PATH}`);
          this.log.error({ status: outcome.status }, err.message);
          throw err;
        }
        const decision = policy.next(outcome.failure, outcome.connectedForMs, now());
        if (decision.action === 'stop') {
          const err = new XAuthError(decision.status, outcome.detail, `GET ${XStreamSource.PATH}`);
          this.log.error({ status: decision.status }, err.message);
          throw err;
        }
        this.log[decision.immediate ? 'info' : 'warn'](
          {
            reason: outcome.reason,
            status: outcome.status,
            detail: outcome.detail ?? outcome.error,
            connectedForMs: outcome.connectedForMs,
            delayMs: decision.delayMs,
            attempt: decision.attempt,
          },
          'X stream disconnected; reconnecting',
        );
        opts.onEvent?.({
          type: 'reconnect-scheduled',
          reason: outcome.reason,
          delayMs: decision.delayMs,
          attempt: decision.attempt,
        });
        await sleep(decision.delayMs, opts.signal);
        if (this.backfillCap > 0) {
          const since = this.lastByteAt ?? now();
          backfill = Math.min(this.backfillCap, Math.max(1, Math.ceil((now() - since) / 60_000)));
        }
      }
    } finally {
      this.running = false;
      this.s.connected = false;
    }
  }

  /** One connection, from request to its end (see `stream-connection.ts`). Never rejects. */
  private connectOnce(
    opts: RunOptions,
    attempt: number,
    backfill: number,
    now: () => number,
  ): Promise<ConnectionOutcome> {
    return connectOnce({
      url: this.streamUrl(backfill),
      bearerToken: this.opts.bearerToken,
      agent: this.opts.agent,
      stallTimeoutMs: this.stallTimeoutMs,
      closeDrainMs: this.opts.closeDrainMs ?? DEFAULT_CLOSE_DRAIN_MS,
      attempt,
      backfillMinutes: backfill,
      signal: opts.signal,
      onMessage: opts.onMessage,
      onEvent: opts.onEvent,
      now,
      log: this.log,
      stats: this.s,
      onBytes: (at) => {
        this.lastByteAt = at;
      },
    });
  }
}

/** Builds the source from the `x` section of the configuration (the worker's composition root). */
export function createXStreamSource(
  x: XConfig,
  logger: Logger,
  overrides: Partial<XStreamSourceOptions> = {},
): XStreamSource {
  if (!x.bearerToken) {
    throw new Error('no X bearer token configured: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE');
  }
  return new XStreamSource({
    baseUrl: x.baseUrl,
    bearerToken: x.bearerToken,
    tweetFields: x.tweetFields,
    expansions: x.expansions,
    userFields: x.userFields,
    stallTimeoutMs: x.stallTimeoutMs,
    closeDrainMs: x.closeDrainMs,
    backfillMinutes: x.backfillMinutes,
    logger,
    ...overrides,
  });
}
