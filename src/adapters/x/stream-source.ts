/**
 * The X filtered-stream source: owns one HTTP connection at a time to
 * `${baseUrl}/2/tweets/search/stream`, reads the body itself (Node `http`/`https`, see
 * `stream-reader.ts` for why not `twitter-api-v2`'s parser), normalises every line and hands it to
 * `onMessage`, and reconnects by X's rules (`reconnect-policy.ts`) until aborted.
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
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import type { XConfig } from '../../config';
import type { MalformedMessage, Post } from '../../domain/post';
import { classifyStreamLine } from '../../domain/stream-line';
import type { Logger } from '../../observability/logger';
import { XAuthError } from './errors';
import { LineDecoder } from './stream-reader';
import { ReconnectPolicy, type Failure, type ReconnectPolicyOptions } from './reconnect-policy';

export { XAuthError } from './errors';

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
  agent?: http.Agent;
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

type Outcome =
  | { kind: 'aborted' }
  | { kind: 'consumer-error'; error: unknown }
  | {
      kind: 'failed';
      failure: Failure;
      reason: DisconnectReason;
      connectedForMs?: number;
      status?: number;
      detail?: string;
      error?: string;
    };

const DEFAULT_STALL_MS = 20_000;
const DEFAULT_CLOSE_DRAIN_MS = 2_000;
const MAX_ERROR_BODY = 16 * 1024;

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // aborted
  }
}

function isThenable(v: unknown): v is PromiseLike<void> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<void>).then === 'function';
}

function clampBackfill(n: number | undefined): number {
  if (n === undefined || !Number.isFinite(n) || n <= 0) return 0;
  return Math.min(5, Math.ceil(n));
}

/** X's problem JSON (`title`, `detail`, `connection_issue`), best effort. */
function problemSummary(body: string): string | undefined {
  try {
    const p = JSON.parse(body) as Record<string, unknown>;
    const first = Array.isArray(p.errors) ? (p.errors[0] as Record<string, unknown> | undefined) : undefined;
    const parts = [p.title, p.connection_issue, p.detail, first?.message, first?.title, first?.detail]
      .filter((x): x is string => typeof x === 'string' && x.length > 0)
      .map((s) => s.slice(0, 200));
    return parts.length > 0 ? [...new Set(parts)].join(': ') : undefined;
  } catch {
    return body.length > 0 ? body.slice(0, 200) : undefined;
  }
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

  /** One connection, from request to its end. Never rejects. */
  private connectOnce(
    opts: RunOptions,
    attempt: number,
    backfill: number,
    now: () => number,
  ): Promise<Outcome> {
    const { signal, onMessage } = opts;
    const url = this.streamUrl(backfill);
    const client = url.protocol === 'https:' ? https : http;
    const stallMs = this.stallTimeoutMs;
    const drainMs = this.opts.closeDrainMs ?? DEFAULT_CLOSE_DRAIN_MS;
    const log = this.log;
    const s = this.s;

    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let connectedAt: number | undefined;
      let res: http.IncomingMessage | undefined;
      let stallTimer: NodeJS.Timeout | undefined;
      let drainTimer: NodeJS.Timeout | undefined;
      /** The signal aborted while connected: read what was already sent, then resolve `aborted`. */
      let closing = false;
      const decoder = new LineDecoder();
      // Back-pressure state: lines not yet handed to onMessage, and whether a promise is pending.
      // `truncated`: the batch is the unterminated tail of a connection that ended mid-line.
      type Batch = { lines: readonly string[]; receivedAt: string; truncated?: boolean };
      let batch: Batch = { lines: [], receivedAt: '' };
      let idx = 0;
      let pumping = false;
      const backlog: Batch[] = [];
      let endOutcome: Outcome | undefined;
      let pendingDisconnect: { type: string; detail: string } | undefined;

      const connectedFor = (): number | undefined =>
        connectedAt === undefined ? undefined : Math.max(0, now() - connectedAt);

      const cleanup = (): void => {
        if (stallTimer) clearTimeout(stallTimer);
        if (drainTimer) clearTimeout(drainTimer);
        stallTimer = drainTimer = undefined;
        signal.removeEventListener('abort', onAbort);
        if (connectedAt !== undefined) s.connected = false;
      };
      const settle = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        cleanup();
        req.destroy();
        resolve(o);
      };
      /** Ends the connection once every received line was handed over. */
      const finish = (end: Outcome): void => {
        if (settled) return;
        if (stallTimer) clearTimeout(stallTimer);
        stallTimer = undefined;
        // While closing, the connection's end is the close we asked for, whatever it looks like.
        const o: Outcome = closing ? { kind: 'aborted' } : end;
        if (connectedAt !== undefined && (o.kind === 'failed' || closing)) {
          const rest = decoder.end();
          if (rest !== undefined) {
            backlog.push({ lines: [rest], receivedAt: new Date(now()).toISOString(), truncated: true });
          }
        }
        if (pumping) {
          endOutcome ??= o;
          return;
        }
        endOutcome = o;
        startPump();
      };
      const armStall = (): void => {
        if (closing) return; // the close deadline bounds the wait instead
        if (stallTimer) clearTimeout(stallTimer);
        stallTimer = setTimeout(() => {
          log.warn({ stallTimeoutMs: stallMs }, 'X stream stalled: no bytes received');
          res?.destroy();
          finish({
            kind: 'failed',
            failure: { kind: 'network' },
            reason: 'stall',
            connectedForMs: connectedFor(),
            error: `no bytes for ${stallMs} ms`,
          });
        }, stallMs);
      };
      const undelivered = (): number =>
        batch.lines.length - idx + backlog.reduce((n, b) => n + b.lines.length, 0);
      const onAbort = (): void => {
        if (settled) return;
        const sock = res?.socket;
        if (connectedAt === undefined || drainMs <= 0 || (!sock && !endOutcome)) {
          settle({ kind: 'aborted' });
          return;
        }
        closing = true;
        // Already ending (X closed first): hand over what is left, then report the close we asked for.
        if (endOutcome) endOutcome = { kind: 'aborted' };
        if (stallTimer) clearTimeout(stallTimer);
        stallTimer = undefined;
        drainTimer = setTimeout(() => {
          const left = undelivered();
          if (left > 0) {
            s.linesDroppedAtClose += left;
            log.error(
              { lines: left, closeDrainMs: drainMs },
              'X stream closed with received lines not handed over (the consumer did not keep up)',
            );
          }
          settle({ kind: 'aborted' });
        }, drainMs);
        // Half-close: X sees the client going and ends the response; what is in flight still arrives.
        sock?.end();
        if (res?.isPaused()) res.resume();
      };

      /** Hands one line over; returns a promise when the consumer is asynchronous. */
      const dispatch = (line: string, at: string, truncated: boolean): PromiseLike<void> | void => {
        const c = classifyStreamLine(line, at, { truncated });
        let m: StreamMessage;
        switch (c.kind) {
          case 'keep-alive':
            return; // the decoder counts (and drops) them before they get here
          case 'disconnect':
            s.lastDisconnectType = c.disconnectType;
            log.warn(
              { disconnect_type: c.disconnectType, detail: c.detail },
              'X stream operational disconnect',
            );
            pendingDisconnect = { type: c.disconnectType, detail: c.detail };
            return;
          case 'error':
            // Not a post, but a message X sent: it goes downstream (dead-letter table), never dropped.
            log.warn({ errors: c.errors }, 'X stream error message');
            m = { kind: 'malformed', message: c.message };
            break;
          case 'post':
            m = { kind: 'post', post: c.post };
            break;
          case 'truncated':
          case 'malformed':
            m = { kind: 'malformed', message: c.message };
            break;
        }
        if (m.kind === 'post') s.posts++;
        else s.malformed++;
        s.lastMessageAt = at;
        return onMessage(m) as PromiseLike<void> | void;
      };

      const fail = (error: unknown): void => {
        res?.destroy();
        settle({ kind: 'consumer-error', error });
      };

      /** Drains `batch` then `backlog`; pauses the response while a consumer promise is pending. */
      const pump = (): void => {
        for (;;) {
          while (idx < batch.lines.length) {
            if (settled) return;
            let r: PromiseLike<void> | void;
            try {
              r = dispatch(batch.lines[idx++]!, batch.receivedAt, batch.truncated === true);
            } catch (err) {
              fail(err);
              return;
            }
            if (isThenable(r)) {
              pumping = true;
              // Closing: keep the response flowing, or Node discards what it buffered when X ends it.
              if (res && !closing && !res.isPaused()) res.pause();
              if (stallTimer) clearTimeout(stallTimer);
              stallTimer = undefined;
              r.then(pump, fail);
              return;
            }
          }
          const next = backlog.shift();
          if (!next) break;
          batch = next;
          idx = 0;
        }
        pumping = false;
        if (settled) return;
        if (pendingDisconnect && !endOutcome) {
          res?.destroy();
          endOutcome = {
            kind: 'failed',
            failure: { kind: 'network' },
            reason: 'operational-disconnect',
            connectedForMs: connectedFor(),
            detail: `${pendingDisconnect.type}: ${pendingDisconnect.detail}`,
          };
        }
        if (endOutcome) {
          settle(endOutcome);
          return;
        }
        if (res?.isPaused()) {
          res.resume();
          armStall();
        }
      };
      const startPump = (): void => {
        if (pumping) return;
        pumping = true;
        pump();
      };

      const onData = (chunk: Buffer): void => {
        if (settled) return;
        stallTimer?.refresh();
        const at = now();
        this.lastByteAt = at;
        s.bytesReceived += chunk.length;
        const ka = decoder.keepAlives;
        const lines = decoder.push(chunk);
        s.keepAlives += decoder.keepAlives - ka;
        if (lines.length === 0) return;
        s.linesReceived += lines.length;
        backlog.push({ lines, receivedAt: new Date(at).toISOString() });
        startPump();
      };

      const req = client.request(url, {
        method: 'GET',
        agent: this.opts.agent ?? false,
        headers: {
          authorization: `Bearer ${this.opts.bearerToken}`,
          accept: 'application/json',
          'user-agent': 'x-stream-pipeline',
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) {
        settle({ kind: 'aborted' });
        return;
      }
      armStall();

      req.on('error', (err: NodeJS.ErrnoException) => {
        finish({
          kind: 'failed',
          failure: { kind: 'network' },
          reason: 'network',
          connectedForMs: connectedFor(),
          error: err.code ?? err.message,
        });
      });

      req.on('response', (response) => {
        res = response;
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (d: string) => {
            if (body.length < MAX_ERROR_BODY) body += d;
          });
          response.on('error', () => undefined);
          response.on('end', () => {
            const detail = problemSummary(body);
            if (status === 401 || status === 403) {
              finish({ kind: 'failed', failure: { kind: 'auth', status }, reason: 'auth', status, detail });
            } else if (status === 429) {
              const reset = Number(response.headers['x-rate-limit-reset']);
              finish({
                kind: 'failed',
                failure: {
                  kind: 'rate-limit',
                  resetEpochSeconds: Number.isFinite(reset) ? reset : undefined,
                },
                reason: 'rate-limit',
                status,
                detail,
              });
            } else {
              finish({ kind: 'failed', failure: { kind: 'http', status }, reason: 'http', status, detail });
            }
          });
          return;
        }
        connectedAt = now();
        s.connected = true;
        s.connects++;
        s.lastConnectedAt = new Date(connectedAt).toISOString();
        log.info(
          { url: url.pathname + url.search, attempt, backfillMinutes: backfill },
          'X stream connected',
        );
        opts.onEvent?.({ type: 'connected', attempt, backfillMinutes: backfill });
        armStall();
        response.on('data', onData);
        response.on('end', () =>
          finish({
            kind: 'failed',
            failure: { kind: 'network' },
            reason: 'closed',
            connectedForMs: connectedFor(),
            error: 'the server ended the response',
          }),
        );
        response.on('error', (err: NodeJS.ErrnoException) =>
          finish({
            kind: 'failed',
            failure: { kind: 'network' },
            reason: 'network',
            connectedForMs: connectedFor(),
            error: err.code ?? err.message,
          }),
        );
        response.on('close', () => {
          if (!response.complete) {
            finish({
              kind: 'failed',
              failure: { kind: 'network' },
              reason: 'network',
              connectedForMs: connectedFor(),
              error: 'connection closed before the response ended',
            });
          }
        });
      });
      req.end();
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
