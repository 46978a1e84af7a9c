/**
 * One connection to the X filtered stream, from request to its end, as a small state machine:
 *
 *   connecting ──HTTP 200──▶ connected ──signal aborts──▶ closing ──▶ settled
 *        │ non-200, error, stall  │ end, error, stall, operational disconnect
 *        └────────────────────────┴──────────────────────────────────────────▶ settled (failed)
 *
 * - connecting: waiting for the response headers (the stall timer runs already).
 * - connected: bytes are framed into lines (`LineDecoder`), queued (`DeliveryQueue`, which pauses
 *   the socket while the consumer is busy) and classified (`classifyStreamLine`) as they are handed
 *   over. No bytes for `stallTimeoutMs` is a stall (our own pause is not).
 * - closing: the signal aborted; the request is half-closed and what X already sent is still handed
 *   over until X ends the response or `closeDrainMs` passes (then what is left is counted as
 *   dropped and logged at error level).
 * - settled: the outcome is decided once everything received was handed over; it never rejects.
 *   A line cut by the end of a connection is handed over as truncated first.
 */
import http from 'node:http';
import https from 'node:https';
import { classifyStreamLine } from '../../domain/stream-line';
import type { Logger } from '../../observability/logger';
import { DeliveryQueue } from './delivery-queue';
import { isUsageCapProblem } from './errors';
import type { Failure } from './reconnect-policy';
import type { DisconnectReason, RunOptions, StreamMessage, XStreamStats } from './stream-source';
import { LineDecoder } from './stream-reader';

/** How a connection ended. */
export type ConnectionOutcome =
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
      /** X's answer was its usage cap / credits exhausted (see `isUsageCapProblem`). */
      usageCapped?: boolean;
    };

export interface StreamConnectionOptions {
  /** The stream URL (no credentials in it). */
  url: URL;
  /** Secret: sent in the `authorization` header only. */
  bearerToken: string;
  agent?: http.Agent;
  stallTimeoutMs: number;
  closeDrainMs: number;
  attempt: number;
  backfillMinutes: number;
  signal: AbortSignal;
  onMessage: RunOptions['onMessage'];
  onEvent?: RunOptions['onEvent'];
  now: () => number;
  log: Logger;
  /** The source's counters, updated in place. */
  stats: XStreamStats;
  /** Called with the time (epoch ms) of every chunk received. */
  onBytes: (at: number) => void;
}

const MAX_ERROR_BODY = 16 * 1024;

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

/** Opens one connection and resolves with how it ended. Never rejects. */
export function connectOnce(opts: StreamConnectionOptions): Promise<ConnectionOutcome> {
  return new Promise<ConnectionOutcome>((resolve) => new StreamConnection(opts, resolve).open());
}

class StreamConnection {
  private settled = false;
  /** Set on HTTP 200: the connection is established. */
  private connectedAt: number | undefined;
  private req!: http.ClientRequest;
  private res: http.IncomingMessage | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  /** The signal aborted while connected: read what was already sent, then resolve `aborted`. */
  private closing = false;
  private readonly decoder = new LineDecoder();
  private readonly queue: DeliveryQueue;
  /** How the connection ended, decided but not reported until everything was handed over. */
  private endOutcome: ConnectionOutcome | undefined;
  /** An operational disconnect was handed over: end the connection once the lines before it are. */
  private pendingDisconnect: { type: string; detail: string } | undefined;

  constructor(
    private readonly o: StreamConnectionOptions,
    private readonly resolve: (outcome: ConnectionOutcome) => void,
  ) {
    this.queue = new DeliveryQueue({
      deliver: (line, at, truncated) => this.dispatch(line, at, truncated),
      isStopped: () => this.settled,
      onBusy: () => {
        // Closing: keep the response flowing, or Node discards what it buffered when X ends it.
        if (this.res && !this.closing && !this.res.isPaused()) this.res.pause();
        this.clearStall();
      },
      onIdle: () => this.onDelivered(),
      onError: (err) => this.fail(err),
    });
  }

  open(): void {
    const { url, signal } = this.o;
    const client = url.protocol === 'https:' ? https : http;
    this.req = client.request(url, {
      method: 'GET',
      agent: this.o.agent ?? false,
      headers: {
        authorization: `Bearer ${this.o.bearerToken}`,
        accept: 'application/json',
        'user-agent': 'x-stream-pipeline',
      },
    });
    signal.addEventListener('abort', this.onAbort, { once: true });
    if (signal.aborted) {
      this.settle({ kind: 'aborted' });
      return;
    }
    this.armStall();
    this.req.on('error', (err: NodeJS.ErrnoException) =>
      this.failNetwork('network', err.code ?? err.message),
    );
    this.req.on('response', (response) => this.onResponse(response));
    this.req.end();
  }

  /** The connection broke at the network level (refused, reset, ended by the server). */
  private failNetwork(reason: 'network' | 'closed', error: string): void {
    this.finish({
      kind: 'failed',
      failure: { kind: 'network' },
      reason,
      connectedForMs: this.connectedFor(),
      error,
    });
  }

  // --- connecting → connected -------------------------------------------------------------------

  private onResponse(response: http.IncomingMessage): void {
    this.res = response;
    const status = response.statusCode ?? 0;
    if (status !== 200) {
      this.onRefused(response, status);
      return;
    }
    const { stats: s, log, url, attempt, backfillMinutes } = this.o;
    this.connectedAt = this.o.now();
    s.connected = true;
    s.connects++;
    s.lastConnectedAt = new Date(this.connectedAt).toISOString();
    log.info({ url: url.pathname + url.search, attempt, backfillMinutes }, 'X stream connected');
    this.o.onEvent?.({ type: 'connected', attempt, backfillMinutes });
    this.armStall();
    response.on('data', this.onData);
    response.on('end', () => this.failNetwork('closed', 'the server ended the response'));
    response.on('error', (err: NodeJS.ErrnoException) =>
      this.failNetwork('network', err.code ?? err.message),
    );
    response.on('close', () => {
      if (!response.complete) {
        this.finish({
          kind: 'failed',
          failure: { kind: 'network' },
          reason: 'network',
          connectedForMs: this.connectedFor(),
          error: 'connection closed before the response ended',
        });
      }
    });
  }

  /** A non-200 answer: read X's problem body, then fail with what the reconnect policy needs. */
  private onRefused(response: http.IncomingMessage, status: number): void {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (d: string) => {
      if (body.length < MAX_ERROR_BODY) body += d;
    });
    response.on('error', () => undefined);
    response.on('end', () => {
      const detail = problemSummary(body);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      if (isUsageCapProblem(status, parsed)) {
        this.finish({
          kind: 'failed',
          failure: { kind: 'http', status },
          reason: 'http',
          status,
          detail,
          usageCapped: true,
        });
      } else if (status === 401 || status === 403) {
        this.finish({ kind: 'failed', failure: { kind: 'auth', status }, reason: 'auth', status, detail });
      } else if (status === 429) {
        const reset = Number(response.headers['x-rate-limit-reset']);
        this.finish({
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
        this.finish({ kind: 'failed', failure: { kind: 'http', status }, reason: 'http', status, detail });
      }
    });
  }

  // --- connected: bytes → lines → consumer ----------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    if (this.settled) return;
    this.stallTimer?.refresh();
    const s = this.o.stats;
    const at = this.o.now();
    this.o.onBytes(at);
    s.bytesReceived += chunk.length;
    const ka = this.decoder.keepAlives;
    const lines = this.decoder.push(chunk);
    s.keepAlives += this.decoder.keepAlives - ka;
    if (lines.length === 0) return;
    s.linesReceived += lines.length;
    this.queue.push({ lines, receivedAt: new Date(at).toISOString() });
    this.queue.start();
  };

  /** Hands one line over; returns a promise when the consumer is asynchronous. */
  private dispatch(line: string, at: string, truncated: boolean): PromiseLike<void> | void {
    const { stats: s, log } = this.o;
    const c = classifyStreamLine(line, at, { truncated });
    let m: StreamMessage;
    switch (c.kind) {
      case 'keep-alive':
        return; // the decoder counts (and drops) them before they get here
      case 'disconnect':
        s.lastDisconnectType = c.disconnectType;
        log.warn({ disconnect_type: c.disconnectType, detail: c.detail }, 'X stream operational disconnect');
        this.pendingDisconnect = { type: c.disconnectType, detail: c.detail };
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
    const { onMessage } = this.o;
    return onMessage(m) as PromiseLike<void> | void;
  }

  /** Everything received was handed over: end now if the end is known, else read on. */
  private onDelivered(): void {
    if (this.pendingDisconnect && !this.endOutcome) {
      this.res?.destroy();
      this.endOutcome = {
        kind: 'failed',
        failure: { kind: 'network' },
        reason: 'operational-disconnect',
        connectedForMs: this.connectedFor(),
        detail: `${this.pendingDisconnect.type}: ${this.pendingDisconnect.detail}`,
      };
    }
    if (this.endOutcome) {
      this.settle(this.endOutcome);
      return;
    }
    if (this.res?.isPaused()) {
      this.res.resume();
      this.armStall();
    }
  }

  // --- stall ------------------------------------------------------------------------------------

  private armStall(): void {
    if (this.closing) return; // the close deadline bounds the wait instead
    if (this.stallTimer) clearTimeout(this.stallTimer);
    const stallMs = this.o.stallTimeoutMs;
    this.stallTimer = setTimeout(() => {
      this.o.log.warn({ stallTimeoutMs: stallMs }, 'X stream stalled: no bytes received');
      this.res?.destroy();
      this.finish({
        kind: 'failed',
        failure: { kind: 'network' },
        reason: 'stall',
        connectedForMs: this.connectedFor(),
        error: `no bytes for ${stallMs} ms`,
      });
    }, stallMs);
  }

  private clearStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  // --- closing ----------------------------------------------------------------------------------

  private readonly onAbort = (): void => {
    if (this.settled) return;
    const drainMs = this.o.closeDrainMs;
    const sock = this.res?.socket;
    if (this.connectedAt === undefined || drainMs <= 0 || (!sock && !this.endOutcome)) {
      this.settle({ kind: 'aborted' });
      return;
    }
    this.closing = true;
    // Already ending (X closed first): hand over what is left, then report the close we asked for.
    if (this.endOutcome) this.endOutcome = { kind: 'aborted' };
    this.clearStall();
    this.drainTimer = setTimeout(() => {
      const left = this.queue.undelivered;
      if (left > 0) {
        this.o.stats.linesDroppedAtClose += left;
        this.o.log.error(
          { lines: left, closeDrainMs: drainMs },
          'X stream closed with received lines not handed over (the consumer did not keep up)',
        );
      }
      this.settle({ kind: 'aborted' });
    }, drainMs);
    // Half-close: X sees the client going and ends the response; what is in flight still arrives.
    sock?.end();
    if (this.res?.isPaused()) this.res.resume();
  };

  // --- settled ----------------------------------------------------------------------------------

  private connectedFor(): number | undefined {
    return this.connectedAt === undefined ? undefined : Math.max(0, this.o.now() - this.connectedAt);
  }

  /** Ends the connection once every received line was handed over. */
  private finish(end: ConnectionOutcome): void {
    if (this.settled) return;
    this.clearStall();
    // While closing, the connection's end is the close we asked for, whatever it looks like.
    const o: ConnectionOutcome = this.closing ? { kind: 'aborted' } : end;
    if (this.connectedAt !== undefined && (o.kind === 'failed' || this.closing)) {
      const rest = this.decoder.end();
      if (rest !== undefined) {
        this.queue.push({ lines: [rest], receivedAt: new Date(this.o.now()).toISOString(), truncated: true });
      }
    }
    if (this.queue.busy) {
      this.endOutcome ??= o;
      return;
    }
    this.endOutcome = o;
    this.queue.start();
  }

  private fail(error: unknown): void {
    this.res?.destroy();
    this.settle({ kind: 'consumer-error', error });
  }

  private settle(o: ConnectionOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.clearStall();
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.o.signal.removeEventListener('abort', this.onAbort);
    if (this.connectedAt !== undefined) this.o.stats.connected = false;
    this.req.destroy();
    this.resolve(o);
  }
}
