/**
 * The X API stand-in: a real HTTP server on loopback that behaves like X's filtered stream and
 * search for the endpoints the pipeline uses, with fault injection and ledgers. Used by tests (in
 * process, port 0), the local demo and benchmarks (`npm run x-standin`).
 *
 * The world: on its own clock (`tickMs`), the stand-in creates `rate` posts/s matching the active
 * rules (none at rate 0 or without rules), whether or not a client reads the stream, as X goes on
 * publishing while we are disconnected or stalled (`worldWhileDisconnected: false` restores the old
 * behaviour: posts are created only while they are delivered). Every created post goes into the
 * world history (the last `historyLimit`), which backfill replays and search reads. A post is
 * delivered when a live connection exists that is not stalled or done.
 *
 * Endpoints (bearer auth: any non-empty token, or exactly `token` when configured):
 * - `GET  /2/tweets/search/stream/rules` — paginated (`max_results`, `pagination_token`), `ids`;
 * - `POST /2/tweets/search/stream/rules[?dry_run=true]` — `{add:[{value,tag}]}` or
 *   `{delete:{ids:[...]}}`; `DuplicateRule` (HTTP 200, in `errors`), invalid rules (HTTP 400, nothing
 *   created; see `rule-engine.ts` for what is checked; `sample:N` is taken), `meta.summary` counts;
 * - `GET  /2/tweets/search/stream` — NDJSON posts matching the active rules, `\r\n` after each,
 *   a bare `\r\n` keep-alive every `keepAliveMs`; `backfill_minutes` (0-5) re-sends the posts
 *   created in the last N minutes (including any cut by a dropped connection, and those created
 *   while no one was connected). One connection at a time: a second one gets 429
 *   `TooManyConnections` (after a 100 ms grace for the old socket's close to be seen, as a client
 *   that just dropped its socket reconnects at once).
 * - `GET  /2/tweets/search/recent`, `GET /2/tweets/search/all` — X API v2 search over the world
 *   history (see `search.ts`): `query` (compiled by `rule-engine.ts`; 512 / 1024 characters;
 *   stream-only operators such as `sample:` refused), `start_time` (inclusive), `end_time`
 *   (exclusive; at least `searchMinAgeMs` before the request, X's 10 s, and so by default),
 *   `since_id` / `until_id` (exclusive), `max_results` 10-100 (default 10), `next_token` /
 *   `pagination_token`; recent reaches back 7 days, all has no limit. Newest first:
 *   `{data, includes, meta:{newest_id, oldest_id, result_count, next_token?}}` (`data` and
 *   `includes` as on the stream, no `matching_rules`), or `{meta:{result_count:0}}`. Invalid
 *   parameters are X's 400 `Invalid Request` with one entry per problem in `errors`. Every response
 *   after auth carries `x-rate-limit-limit/remaining/reset`: `searchRateLimit` requests per window
 *   per endpoint (400s count), then 429 until the window resets.
 *
 * - `POST /2/compliance/jobs`, `GET /2/compliance/jobs[/:id]` and the signed upload/download URLs
 *   they hand out — X's batch compliance, with compliance events the stand-in decides itself (see
 *   `compliance.ts`; `complianceFraction`, `complianceProcessingMs`, fault `complianceJobsFail`).
 *
 * Control (no auth): `POST /_control/faults` (JSON, merged; see {@link StandinFaults}: stream faults
 * count posts delivered, search faults count search requests), `POST /_control/rate` `{rate}`,
 * `GET /_control/ledger`, `GET /_control/world`, `POST /_control/ledger/reset`, `GET /_control/stats`.
 *
 * Ledgers:
 * - delivery (`ledger()`, `GET /_control/ledger`): the id of every post whose complete line (with
 *   its `\r\n`) was handed to the kernel for a live connection (recorded in the write callback), in
 *   write order, duplicates included; plus the number of malformed lines written;
 * - world (`world()`, `GET /_control/world`, which adds `createdCount`, `deliveredCount`,
 *   `searchedCount`): `created` (`{id, created_at}` of every post created, in order, with the one cut
 *   by `dropAfterPosts`), `delivered` (the delivery ledger's unique ids), `searched` (unique ids
 *   returned by search). It keeps an id and a time per post created, until reset.
 * - compliance (`complianceLedger()`, `GET /_control/compliance`): every compliance event handed out
 *   in a job's result file, one entry per job and id (`{jobId, id, action, reason, created_at,
 *   redacted_at}`).
 * `resetLedger()` / `POST /_control/ledger/reset` empties all three, not the history.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ActiveRule, StreamRule } from '../../src/domain/rules';
import { Corpus, rng, snowflake, type RuleForGeneration } from './corpus';
import {
  COMPLIANCE_DOWNLOAD_PATH,
  COMPLIANCE_JOBS_PATH,
  COMPLIANCE_UPLOAD_PATH,
  createComplianceJobs,
  type ComplianceDecision,
  type ComplianceFaults,
  type ComplianceResponse,
} from './compliance';
import { compileRule, RuleSyntaxError } from './rule-engine';
import { parseSearch, searchHistory, type HistoryEntry, type SearchEndpoint } from './search';

export interface StandinFaults extends ComplianceFaults {
  /** The next N stream connects get HTTP 429 with `x-rate-limit-*` headers. */
  rateLimitConnects?: number;
  /** Seconds from now put in `x-rate-limit-reset` (default 15). */
  rateLimitResetSeconds?: number;
  /** The next N stream connects get HTTP 503. */
  unavailableConnects?: number;
  /** The next N stream connects get HTTP 401. */
  unauthorizedConnects?: number;
  /** After N more posts: write half of the next post's line, then destroy the socket. */
  dropAfterPosts?: number;
  /** After N more posts: end the response gracefully. */
  endAfterPosts?: number;
  /** After N more posts: stop writing anything (posts and keep-alives) on this connection. */
  stallAfterPosts?: number;
  /** After N more posts: send an `operational-disconnect` message, then end the response. */
  disconnectAfterPosts?: number;
  /** `disconnect_type` of that message (default `UpstreamOperationalDisconnect`). */
  disconnectType?: string;
  /** After N more posts: write one malformed (invalid JSON) line. */
  malformedAfterPosts?: number;
  /** After N more posts, write an in-stream error message (not a disconnect), once. */
  errorMessageAfterPosts?: number;
  /** Write each batch in pieces cut at random byte positions (inside `\r\n` and UTF-8 characters). */
  splitWrites?: boolean;
  /** Write every Nth post twice (0 = off). */
  duplicateEvery?: number;
  /** Honour `backfill_minutes` (default true). */
  backfill?: boolean;
  /** The next N search requests get HTTP 429, `x-rate-limit-remaining: 0`, reset in `rateLimitResetSeconds`. */
  searchRateLimited?: number;
  /** The next N search requests get HTTP 503. */
  searchUnavailable?: number;
  /** The next N search requests that carry a `next_token` get HTTP 503 (the token stays good). */
  searchFailPage?: number;
  /**
   * While true, stream connects and search requests get HTTP 429 `UsageCapExceeded` (X's monthly
   * cap): not a rate limit, it does not pass with a reset; clear it with `{"usageCapped": false}`.
   */
  usageCapped?: boolean;
}

export interface StandinOptions {
  /** 0 = a free port (default). */
  port?: number;
  host?: string;
  /** Posts per second (default 10). */
  rate?: number;
  seed?: number;
  /** Virtual time of the post ids (see `Corpus`). @default 2024-01-01T00:00:00Z */
  idTimeMs?: number;
  /** Keep-alive interval (default 20 000 ms, like X). */
  keepAliveMs?: number;
  faults?: StandinFaults;
  /** When set, only this bearer token is accepted. */
  token?: string;
  /** Rules active from the start. */
  rules?: StreamRule[];
  /** Generator tick (default 20 ms). */
  tickMs?: number;
  /** Posts kept in the world history, for backfill and search (default 200 000). */
  historyLimit?: number;
  /**
   * The world creates posts while no client reads the stream (none connected, stalled, dropped),
   * as X goes on publishing. False: posts are created only while they are delivered (the
   * stand-in's old behaviour). @default true
   */
  worldWhileDisconnected?: boolean;
  /** Search requests allowed per endpoint per window. @default { limit: 450, windowSeconds: 900 } */
  searchRateLimit?: { limit: number; windowSeconds: number };
  /**
   * How old a post must be for search: `end_time` must be at least this long before the request
   * (and is by default). X's rule is 10 s; tests set 0 to search what was just created.
   * @default 10 000
   */
  searchMinAgeMs?: number;
  /** Share of the stand-in's own posts uploaded to a compliance job that get an event. @default 0.2 */
  complianceFraction?: number;
  /** Time a compliance job takes from upload to `complete`. @default 500 */
  complianceProcessingMs?: number;
}

/** The world ledger: what was created, delivered on the stream and found by search. */
export interface StandinWorld {
  /** Every matching post created, in creation order (with the post cut by `dropAfterPosts`). */
  created: { id: string; created_at: string }[];
  /** Unique ids written on a live connection, in first-write order. */
  delivered: string[];
  /** Unique ids returned in search responses' `data`, in first-return order. */
  searched: string[];
}

export interface StandinStats {
  activeConnection: boolean;
  connects: number;
  rejected: Record<string, number>;
  /** Sequence numbers the corpus used (attempts included). */
  postsGenerated: number;
  /** Posts created in the world since start (not reset with the ledger). */
  postsCreated: number;
  /** Lines in the delivery ledger (reset with it). */
  postsWritten: number;
  /**
   * Bytes written on the live connection that the kernel has not taken yet (a consumer slower than
   * the rate): their posts enter the delivery ledger only once flushed. 0 without a connection.
   */
  bufferedBytes: number;
  malformedLinesWritten: number;
  keepAlivesWritten: number;
  backfilled: number;
  /** Search requests received (every status), since start. */
  searchRequests: number;
  /** Posts returned in search responses' `data` (repeats included), since start. */
  searchPostsReturned: number;
  rate: number;
  rules: number;
  faults: StandinFaults;
}

export interface XStandin {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Every post id written on a live connection, in order (duplicates included). */
  ledger(): string[];
  malformedLines(): number;
  /** Created, delivered and searched posts (see {@link StandinWorld}). */
  world(): StandinWorld;
  /** Empties the delivery ledger and the world ledger (not the history backfill and search read). */
  resetLedger(): void;
  stats(): StandinStats;
  /** Merges `faults` into the active faults; returns them. */
  setFaults(faults: StandinFaults): StandinFaults;
  setRate(rate: number): void;
  rules(): ActiveRule[];
  /** Every compliance event handed out in a result file, per job and id (see `compliance.ts`). */
  complianceLedger(): ComplianceDecision[];
  /** The ids of `ids` this stand-in reports compliance events for, with the reason (records nothing). */
  complianceDecide(ids: readonly string[]): Map<string, string>;
}

interface Item {
  text: string;
  id?: string;
  malformed?: boolean;
}

interface Live {
  res: http.ServerResponse;
  socket: Socket;
  stalled: boolean;
  done: boolean;
  queue: Promise<void>;
  keepAlive?: NodeJS.Timeout;
}

interface StoredRule extends ActiveRule {
  compiled: RuleForGeneration;
}

const RULES_PATH = '/2/tweets/search/stream/rules';
const STREAM_PATH = '/2/tweets/search/stream';
const SEARCH_PATHS: Record<string, SearchEndpoint> = {
  '/2/tweets/search/recent': 'recent',
  '/2/tweets/search/all': 'all',
};
const PROBLEMS = 'https://api.twitter.com/2/problems';
const MALFORMED_LINE = '{"data":{"id":"0","text":"this line is cut short';
const TOO_MANY_REQUESTS = {
  title: 'Too Many Requests',
  detail: 'Too Many Requests',
  type: 'about:blank',
  status: 429,
};
const SERVICE_UNAVAILABLE = {
  title: 'Service Unavailable',
  detail: 'Service Unavailable',
  type: 'about:blank',
  status: 503,
};
const USAGE_CAPPED = {
  title: 'UsageCapExceeded',
  detail: 'Usage cap exceeded: Monthly product cap',
  type: `${PROBLEMS}/usage-capped`,
  period: 'Monthly',
  scope: 'Product',
  status: 429,
};

function problem(
  res: http.ServerResponse,
  status: number,
  body: Record<string, unknown>,
  headers = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1_000_000) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error('invalid JSON body'));
      }
    });
    req.on('error', reject);
  });
}

/** The request body as text (compliance id files: up to 64 MB). */
function readText(req: http.IncomingMessage, limit = 64 * 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, r: ComplianceResponse): void {
  const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  res.writeHead(r.status, {
    'content-type': r.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const setImmediateP = (): Promise<void> => new Promise((r) => setImmediate(r));

export async function startXStandin(opts: StandinOptions = {}): Promise<XStandin> {
  const seed = opts.seed ?? 1;
  const keepAliveMs = opts.keepAliveMs ?? 20_000;
  const tickMs = opts.tickMs ?? 20;
  const historyLimit = opts.historyLimit ?? 200_000;
  const worldWhileDisconnected = opts.worldWhileDisconnected ?? true;
  const searchLimit = opts.searchRateLimit ?? { limit: 450, windowSeconds: 900 };
  const searchMinAgeMs = opts.searchMinAgeMs ?? 10_000;
  const corpus = new Corpus(seed, opts.idTimeMs);
  const splitRng = rng(seed ^ 0x2545f491);
  let rate = opts.rate ?? 10;
  let faults: StandinFaults = { ...(opts.faults ?? {}) };

  const rules = new Map<string, StoredRule>();
  let ruleSeq = 100_000;
  const ledger: string[] = [];
  let malformedWritten = 0;
  let keepAlivesWritten = 0;
  let backfilled = 0;
  let connects = 0;
  const rejected: Record<string, number> = {};
  /** The world history, oldest first; only the last `historyLimit` entries count (see `historyStart`). */
  const history: HistoryEntry[] = [];
  // The world ledger: ids and creation times of created posts (parallel arrays, small per post).
  const createdIds: string[] = [];
  const createdMs: number[] = [];
  const searched = new Set<string>();
  let postsCreated = 0;
  let lastCreatedMs = 0;
  let searchRequests = 0;
  let searchPostsReturned = 0;
  const searchWindows = new Map<SearchEndpoint, { startMs: number; used: number }>();
  let live: Live | undefined;
  let carry = 0;
  let lastTick = Date.now();
  let dupCounter = 0;
  const sockets = new Set<Socket>();
  /** `created_at` of a post still in the history (ids grow with creation: a binary search). */
  const createdAtOf = (id: string): string | undefined => {
    const want = BigInt(id);
    let lo = historyStart();
    let hi = history.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const got = BigInt(history[mid]!.id);
      if (got === want) return new Date(history[mid]!.at).toISOString();
      if (got < want) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  };
  const compliance = createComplianceJobs({
    seed,
    fraction: opts.complianceFraction,
    processingMs: opts.complianceProcessingMs,
    createdAtOf,
  });
  if (opts.faults?.complianceJobsFail !== undefined)
    compliance.setFaults({ complianceJobsFail: opts.faults.complianceJobsFail });

  const addRule = (r: StreamRule): StoredRule => {
    const compiled = compileRule(r.value);
    const id = snowflake(seed, ruleSeq++, 1);
    const stored: StoredRule = {
      id,
      value: r.value,
      ...(r.tag ? { tag: r.tag } : {}),
      compiled: { id, tag: r.tag, seeds: compiled.seeds, match: compiled.match },
    };
    rules.set(id, stored);
    return stored;
  };
  for (const r of opts.rules ?? []) addRule(r);
  const publicRule = (r: StoredRule): ActiveRule =>
    r.tag ? { id: r.id, value: r.value, tag: r.tag } : { id: r.id, value: r.value };

  // ---- writing to the live connection -------------------------------------------------------

  /** Writes items in order on `l` (through its queue); records the ledger in write callbacks. */
  const enqueue = (l: Live, items: Item[], after?: 'drop' | 'end' | 'stall'): void => {
    const split = faults.splitWrites === true;
    l.queue = l.queue.then(async () => {
      if (l.done) return;
      if (items.length > 0) {
        if (split) await writeSplit(l, items);
        else writeWhole(l, items);
      }
      if (after === 'drop') {
        l.done = true;
        // Let the written bytes reach the kernel first: destroy() discards unflushed writes.
        const deadline = Date.now() + 1000;
        while ((l.res.writableLength > 0 || l.socket.writableLength > 0) && Date.now() < deadline) {
          await setImmediateP();
        }
        l.socket.destroy();
      } else if (after === 'end') {
        l.done = true;
        l.res.end();
      } else if (after === 'stall') {
        l.stalled = true;
      }
    });
  };

  const record = (items: Item[]) => (err?: Error | null) => {
    if (err) return;
    for (const it of items) {
      if (it.id !== undefined) ledger.push(it.id);
      else if (it.malformed) malformedWritten++;
    }
  };

  const writeWhole = (l: Live, items: Item[]): void => {
    let text = '';
    for (const it of items) text += it.text;
    l.res.write(text, record(items));
  };

  const writeSplit = async (l: Live, items: Item[]): Promise<void> => {
    const bufs = items.map((it) => Buffer.from(it.text, 'utf8'));
    const all = Buffer.concat(bufs);
    // Cut points: random positions, plus one between each '\r' and '\n', plus one inside a
    // multi-byte character when there is one.
    const cuts = new Set<number>();
    for (let i = 0; i < Math.max(2, items.length * 2); i++)
      cuts.add(1 + Math.floor(splitRng() * (all.length - 1)));
    let off = 0;
    for (const b of bufs) {
      off += b.length;
      if (b.length >= 2 && b[b.length - 2] === 13) cuts.add(off - 1);
    }
    for (let i = 0; i < all.length; i++) {
      if (all[i]! >= 0xc0) {
        cuts.add(i + 1);
        break;
      }
    }
    const sorted = [...cuts].filter((c) => c > 0 && c < all.length).sort((a, b) => a - b);
    sorted.push(all.length);
    let start = 0;
    let itemIdx = 0;
    let itemEnd = bufs[0]?.length ?? 0;
    for (const end of sorted) {
      if (l.done) return;
      const done: Item[] = [];
      while (itemIdx < items.length && itemEnd <= end) {
        done.push(items[itemIdx]!);
        itemIdx++;
        itemEnd += bufs[itemIdx]?.length ?? 0;
      }
      l.res.write(all.subarray(start, end), record(done));
      start = end;
      await setImmediateP();
    }
  };

  // ---- the generator --------------------------------------------------------------------------

  type Action = 'drop' | 'end' | 'stall';
  /** Applies due one-shot faults; returns the action that ends this tick, if any. */
  const dueFaults = (items: Item[], now: number): Action | undefined => {
    if (faults.malformedAfterPosts !== undefined && faults.malformedAfterPosts <= 0) {
      faults.malformedAfterPosts = undefined;
      items.push({ text: MALFORMED_LINE + '\r\n', malformed: true });
    }
    if (faults.errorMessageAfterPosts !== undefined && faults.errorMessageAfterPosts <= 0) {
      faults.errorMessageAfterPosts = undefined;
      const msg = {
        errors: [
          {
            title: 'ConnectionException',
            detail: 'A rule of this stream could not be matched for a while.',
            type: `${PROBLEMS}/streaming-connection`,
          },
        ],
      };
      items.push({ text: JSON.stringify(msg) + '\r\n', malformed: true });
    }
    if (faults.disconnectAfterPosts !== undefined && faults.disconnectAfterPosts <= 0) {
      faults.disconnectAfterPosts = undefined;
      const msg = {
        errors: [
          {
            title: 'operational-disconnect',
            disconnect_type: faults.disconnectType ?? 'UpstreamOperationalDisconnect',
            detail: 'This stream has been disconnected upstream for operational reasons.',
            type: `${PROBLEMS}/operational-disconnect`,
          },
        ],
      };
      items.push({ text: JSON.stringify(msg) + '\r\n' });
      return 'end';
    }
    if (faults.endAfterPosts !== undefined && faults.endAfterPosts <= 0) {
      faults.endAfterPosts = undefined;
      return 'end';
    }
    if (faults.stallAfterPosts !== undefined && faults.stallAfterPosts <= 0) {
      faults.stallAfterPosts = undefined;
      return 'stall';
    }
    if (faults.dropAfterPosts !== undefined && faults.dropAfterPosts <= 0) {
      faults.dropAfterPosts = undefined;
      // Cut the next post in half: it is not in the ledger, but it is in the backfill history.
      const next = create(now);
      if (next) items.push({ text: next.line.slice(0, Math.max(1, Math.floor(next.line.length / 2))) });
      return 'drop';
    }
    return undefined;
  };

  const countDown = (): void => {
    for (const k of [
      'malformedAfterPosts',
      'errorMessageAfterPosts',
      'disconnectAfterPosts',
      'endAfterPosts',
      'stallAfterPosts',
      'dropAfterPosts',
    ] as const) {
      const v = faults[k];
      if (v !== undefined) faults[k] = v - 1;
    }
  };

  const compiledRules = (): RuleForGeneration[] => [...rules.values()].map((r) => r.compiled);

  /** Index of the oldest history entry that counts (the array is compacted in batches). */
  const historyStart = (): number => Math.max(0, history.length - historyLimit);

  /** Creates the next post of the world: into the history and the created ledger. */
  const create = (now: number, rulesNow = compiledRules()): { id: string; line: string } | undefined => {
    const p = corpus.next(rulesNow, now);
    if (!p) return undefined;
    history.push({ id: p.id, line: p.line, at: now });
    createdIds.push(p.id);
    createdMs.push(now);
    postsCreated++;
    lastCreatedMs = now;
    // Compact now and then rather than shifting a large array on every tick.
    if (history.length > historyLimit + Math.min(10_000, Math.ceil(historyLimit / 10)))
      history.splice(0, history.length - historyLimit);
    return p;
  };

  /**
   * Every tick the world creates `rate` posts/s matching the active rules (none without rules),
   * delivered on the live connection when there is one that is not stalled or done. The one-shot
   * faults count posts delivered: after the fault's action, this tick's remaining posts are
   * created but not delivered.
   */
  const tick = (): void => {
    // Monotonic, so that the history stays in created_at order.
    const now = Math.max(Date.now(), lastCreatedMs);
    const dt = Math.min(now - lastTick, 1000);
    lastTick = now;
    const l = live && !live.stalled && !live.done ? live : undefined;
    if (!l && !worldWhileDisconnected) return;
    const items: Item[] = [];
    let action = l ? dueFaults(items, now) : undefined;
    if (!(action && !worldWhileDisconnected)) {
      carry += (rate * dt) / 1000;
      let n = Math.floor(carry);
      carry -= n;
      const rulesNow = compiledRules();
      while (n-- > 0 && rulesNow.length > 0) {
        const p = create(now, rulesNow);
        if (!p || !l || action) continue;
        items.push({ text: p.line + '\r\n', id: p.id });
        if (faults.duplicateEvery && ++dupCounter % faults.duplicateEvery === 0) {
          items.push({ text: p.line + '\r\n', id: p.id });
        }
        countDown();
        action = dueFaults(items, now);
        // The old behaviour: nothing is created that is not delivered.
        if (action && !worldWhileDisconnected) break;
      }
    }
    if (l && (items.length > 0 || action)) enqueue(l, items, action);
  };
  const timer = setInterval(tick, tickMs);

  // ---- HTTP -----------------------------------------------------------------------------------

  const authorized = (req: http.IncomingMessage): boolean => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m || m[1]!.trim() === '') return false;
    return opts.token === undefined || m[1] === opts.token;
  };
  const unauthorized = (res: http.ServerResponse): void =>
    problem(res, 401, { title: 'Unauthorized', type: 'about:blank', status: 401, detail: 'Unauthorized' });
  const reject = (status: number): void => {
    rejected[status] = (rejected[status] ?? 0) + 1;
  };

  const handleStream = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ): Promise<void> => {
    if (!authorized(req) || (faults.unauthorizedConnects ?? 0) > 0) {
      if ((faults.unauthorizedConnects ?? 0) > 0) faults.unauthorizedConnects! -= 1;
      reject(401);
      return unauthorized(res);
    }
    if (faults.usageCapped) {
      reject(429);
      return problem(res, 429, USAGE_CAPPED);
    }
    if ((faults.rateLimitConnects ?? 0) > 0) {
      faults.rateLimitConnects! -= 1;
      reject(429);
      const reset = Math.floor(Date.now() / 1000) + (faults.rateLimitResetSeconds ?? 15);
      return problem(res, 429, TOO_MANY_REQUESTS, {
        'x-rate-limit-limit': '50',
        'x-rate-limit-remaining': '0',
        'x-rate-limit-reset': String(reset),
      });
    }
    if ((faults.unavailableConnects ?? 0) > 0) {
      faults.unavailableConnects! -= 1;
      reject(503);
      return problem(res, 503, SERVICE_UNAVAILABLE);
    }
    const backfillParam = url.searchParams.get('backfill_minutes');
    const backfillMinutes = backfillParam === null ? 0 : Number(backfillParam);
    if (!Number.isInteger(backfillMinutes) || backfillMinutes < 0 || backfillMinutes > 5) {
      reject(400);
      return problem(res, 400, {
        title: 'Invalid Request',
        detail: 'One or more parameters to your request was invalid.',
        errors: [
          { parameters: { backfill_minutes: [backfillParam] }, message: 'backfill_minutes must be 0-5' },
        ],
        type: `${PROBLEMS}/invalid-request`,
      });
    }
    if (live && !live.done) {
      // A client that just destroyed its socket may reconnect before we have seen the close.
      const deadline = Date.now() + 100;
      while (live && !live.done && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    }
    if (live && !live.done) {
      reject(429);
      return problem(res, 429, {
        title: 'ConnectionException',
        detail: 'This stream is currently at the maximum allowed connection limit.',
        connection_issue: 'TooManyConnections',
        type: `${PROBLEMS}/streaming-connection`,
      });
    }
    connects++;
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const l: Live = { res, socket: req.socket, stalled: false, done: false, queue: Promise.resolve() };
    live = l;
    // Without the world, nothing was created while no one was connected: start counting now.
    if (!worldWhileDisconnected) lastTick = Date.now();
    const onClose = (): void => {
      l.done = true;
      if (l.keepAlive) clearInterval(l.keepAlive);
      if (live === l) live = undefined;
    };
    res.on('close', onClose);
    res.on('error', onClose);
    // A client that half-closes is going: like X, end the response after what is already queued,
    // and write nothing more (the world goes on creating; backfill or search can find the rest).
    req.socket.once('end', () => {
      if (!l.done) enqueue(l, [], 'end');
    });
    l.keepAlive = setInterval(() => {
      if (l.stalled || l.done) return;
      l.queue = l.queue.then(() => {
        if (l.stalled || l.done) return;
        l.res.write('\r\n');
        keepAlivesWritten++;
      });
    }, keepAliveMs);
    if (backfillMinutes > 0 && faults.backfill !== false) {
      const since = Date.now() - backfillMinutes * 60_000;
      const items = history
        .slice(historyStart())
        .filter((h) => h.at >= since)
        .map((h) => ({ text: h.line + '\r\n', id: h.id }));
      backfilled += items.length;
      if (items.length > 0) enqueue(l, items);
    }
  };

  /** `GET /2/tweets/search/{recent,all}`: checks in the order auth, cap, limits, faults, request. */
  const handleSearch = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    endpoint: SearchEndpoint,
  ): void => {
    searchRequests++;
    const now = Date.now();
    if (!authorized(req)) {
      reject(401);
      return unauthorized(res);
    }
    let w = searchWindows.get(endpoint);
    if (!w || now >= w.startMs + searchLimit.windowSeconds * 1000) {
      w = { startMs: now, used: 0 };
      searchWindows.set(endpoint, w);
    }
    const windowReset = String(Math.ceil((w.startMs + searchLimit.windowSeconds * 1000) / 1000));
    const limits = (remaining: number, reset = windowReset): Record<string, string> => ({
      'x-rate-limit-limit': String(searchLimit.limit),
      'x-rate-limit-remaining': String(Math.max(0, remaining)),
      'x-rate-limit-reset': reset,
    });
    const refuse = (status: number, body: Record<string, unknown>, headers: Record<string, string>): void => {
      reject(status);
      problem(res, status, body, headers);
    };
    if (faults.usageCapped) return refuse(429, USAGE_CAPPED, limits(searchLimit.limit - w.used));
    if ((faults.searchRateLimited ?? 0) > 0) {
      faults.searchRateLimited! -= 1;
      const reset = String(Math.floor(now / 1000) + (faults.rateLimitResetSeconds ?? 15));
      return refuse(429, TOO_MANY_REQUESTS, limits(0, reset));
    }
    if (w.used >= searchLimit.limit) return refuse(429, TOO_MANY_REQUESTS, limits(0));
    w.used++;
    const headers = limits(searchLimit.limit - w.used);
    if ((faults.searchUnavailable ?? 0) > 0) {
      faults.searchUnavailable! -= 1;
      return refuse(503, SERVICE_UNAVAILABLE, headers);
    }
    const parsed = parseSearch(endpoint, url.searchParams, now, searchMinAgeMs);
    if ('errors' in parsed) {
      return refuse(
        400,
        {
          title: 'Invalid Request',
          detail: 'One or more parameters to your request was invalid.',
          type: `${PROBLEMS}/invalid-request`,
          errors: parsed.errors,
        },
        headers,
      );
    }
    if (parsed.query.paginated && (faults.searchFailPage ?? 0) > 0) {
      faults.searchFailPage! -= 1;
      return refuse(503, SERVICE_UNAVAILABLE, headers);
    }
    const { body, ids } = searchHistory(history, historyStart(), parsed.query);
    for (const id of ids) searched.add(id);
    searchPostsReturned += ids.length;
    const text = JSON.stringify(body);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };

  const handleRulesGet = (res: http.ServerResponse, url: URL): void => {
    const max = Math.min(1000, Math.max(1, Number(url.searchParams.get('max_results') ?? 1000) || 1000));
    const ids = url.searchParams.get('ids')?.split(',');
    let all = [...rules.values()];
    if (ids) all = all.filter((r) => ids.includes(r.id));
    const start = Number(url.searchParams.get('pagination_token') ?? 0) || 0;
    const page = all.slice(start, start + max).map(publicRule);
    const meta: Record<string, unknown> = { sent: new Date().toISOString(), result_count: page.length };
    if (start + max < all.length) meta.next_token = String(start + max);
    json(res, 200, page.length > 0 ? { data: page, meta } : { meta });
  };

  const handleRulesPost = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ): Promise<void> => {
    const dryRun = url.searchParams.get('dry_run') === 'true';
    let body: { add?: StreamRule[]; delete?: { ids?: string[]; values?: string[] } };
    try {
      body = (await readBody(req)) as typeof body;
    } catch (err) {
      return problem(res, 400, {
        title: 'Invalid Request',
        detail: (err as Error).message,
        type: `${PROBLEMS}/invalid-request`,
      });
    }
    const sent = new Date().toISOString();
    if (Array.isArray(body.add)) {
      const errors: Record<string, unknown>[] = [];
      const valid: StreamRule[] = [];
      const seen = new Map([...rules.values()].map((r) => [r.value, r.id]));
      let invalid = 0;
      for (const r of body.add) {
        const value = typeof r?.value === 'string' ? r.value : '';
        try {
          compileRule(value);
        } catch (err) {
          if (!(err instanceof RuleSyntaxError)) throw err;
          invalid++;
          errors.push({
            value,
            details: [err.message],
            title: 'Invalid Rule',
            type: `${PROBLEMS}/invalid-rules`,
          });
          continue;
        }
        const dup = seen.get(value);
        if (dup !== undefined) {
          errors.push({ value, id: dup, title: 'DuplicateRule', type: `${PROBLEMS}/duplicate-rules` });
          continue;
        }
        seen.set(value, '');
        valid.push(r.tag ? { value, tag: r.tag } : { value });
      }
      const summaryBase = { valid: body.add.length - invalid, invalid };
      if (invalid > 0) {
        // X creates nothing when a request holds an invalid rule.
        return json(res, 400, {
          errors,
          meta: { sent, summary: { created: 0, not_created: body.add.length, ...summaryBase } },
        });
      }
      const created = dryRun
        ? valid.map((r, i) => ({ id: snowflake(seed, ruleSeq + i, 1), ...r }))
        : valid.map((r) => publicRule(addRule(r)));
      return json(res, 200, {
        ...(created.length > 0 ? { data: created } : {}),
        ...(errors.length > 0 ? { errors } : {}),
        meta: {
          sent,
          summary: { created: created.length, not_created: body.add.length - created.length, ...summaryBase },
        },
      });
    }
    if (body.delete && (Array.isArray(body.delete.ids) || Array.isArray(body.delete.values))) {
      const errors: Record<string, unknown>[] = [];
      let deleted = 0;
      const targets = body.delete.ids ?? [];
      for (const v of body.delete.values ?? []) {
        const found = [...rules.values()].find((r) => r.value === v);
        if (found) targets.push(found.id);
        else errors.push({ value: v, title: 'Not Found', type: `${PROBLEMS}/resource-not-found` });
      }
      for (const id of targets) {
        if (rules.has(id)) {
          if (!dryRun) rules.delete(id);
          deleted++;
        } else {
          errors.push({
            id,
            title: 'Not Found',
            detail: `rule ${id} does not exist`,
            type: `${PROBLEMS}/resource-not-found`,
          });
        }
      }
      return json(res, 200, {
        ...(errors.length > 0 ? { errors } : {}),
        meta: { sent, summary: { deleted, not_deleted: errors.length } },
      });
    }
    return problem(res, 400, {
      title: 'Invalid Request',
      detail: 'One of "add" or "delete" is required.',
      type: `${PROBLEMS}/invalid-request`,
    });
  };

  /** Batch compliance: the jobs API (bearer auth) and the signed storage URLs (no auth). */
  const handleCompliance = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    path: string,
  ): Promise<void> => {
    const base = `http://${req.headers.host ?? '127.0.0.1'}`;
    const signature = url.searchParams.get('signature');
    const storageId = (prefix: string) => path.slice(prefix.length + 1);
    if (path.startsWith(COMPLIANCE_UPLOAD_PATH + '/') && req.method === 'PUT') {
      return send(res, compliance.upload(storageId(COMPLIANCE_UPLOAD_PATH), signature, await readText(req)));
    }
    if (path.startsWith(COMPLIANCE_DOWNLOAD_PATH + '/') && req.method === 'GET') {
      return send(res, compliance.download(storageId(COMPLIANCE_DOWNLOAD_PATH), signature));
    }
    if (!path.startsWith(COMPLIANCE_JOBS_PATH)) return json(res, 404, { error: 'not found' });
    if (!authorized(req)) {
      reject(401);
      return unauthorized(res);
    }
    if (path === COMPLIANCE_JOBS_PATH && req.method === 'POST') {
      let body: unknown;
      try {
        body = await readBody(req);
      } catch (err) {
        return problem(res, 400, {
          title: 'Invalid Request',
          detail: (err as Error).message,
          type: `${PROBLEMS}/invalid-request`,
        });
      }
      return send(res, compliance.create(body, base));
    }
    if (path === COMPLIANCE_JOBS_PATH && req.method === 'GET')
      return send(res, compliance.list(url.searchParams, base));
    const id = path.slice(COMPLIANCE_JOBS_PATH.length + 1);
    if (req.method === 'GET' && /^\d+$/.test(id)) return send(res, compliance.get(id, base));
    return problem(res, 404, {
      title: 'Not Found Error',
      detail: `no route for ${req.method} ${path}`,
      type: 'about:blank',
    });
  };

  const api: Omit<XStandin, 'url' | 'port' | 'close'> = {
    ledger: () => [...ledger],
    malformedLines: () => malformedWritten,
    world: () => ({
      created: createdIds.map((id, i) => ({ id, created_at: new Date(createdMs[i]!).toISOString() })),
      delivered: [...new Set(ledger)],
      searched: [...searched],
    }),
    resetLedger: () => {
      ledger.length = 0;
      malformedWritten = 0;
      createdIds.length = 0;
      createdMs.length = 0;
      searched.clear();
      compliance.reset();
    },
    stats: () => ({
      activeConnection: live !== undefined && !live.done,
      connects,
      rejected: { ...rejected },
      postsGenerated: corpus.generated,
      postsCreated,
      postsWritten: ledger.length,
      bufferedBytes: live && !live.done ? live.res.writableLength : 0,
      malformedLinesWritten: malformedWritten,
      keepAlivesWritten,
      backfilled,
      searchRequests,
      searchPostsReturned,
      rate,
      rules: rules.size,
      faults: { ...faults },
    }),
    setFaults: (f) => {
      faults = { ...faults, ...f };
      if (f.complianceJobsFail !== undefined)
        compliance.setFaults({ complianceJobsFail: f.complianceJobsFail });
      return { ...faults, ...compliance.faults() };
    },
    setRate: (r) => {
      rate = Math.max(0, r);
      carry = 0;
    },
    rules: () => [...rules.values()].map(publicRule),
    complianceLedger: () => compliance.ledger(),
    complianceDecide: (ids) => compliance.decide(ids),
  };

  const handleControl = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
  ): Promise<void> => {
    if (req.method === 'GET' && path === '/_control/ledger') {
      const posts = api.ledger();
      return json(res, 200, {
        posts,
        count: posts.length,
        unique: new Set(posts).size,
        malformedLines: malformedWritten,
      });
    }
    if (req.method === 'GET' && path === '/_control/world') {
      const w = api.world();
      return json(res, 200, {
        ...w,
        createdCount: w.created.length,
        deliveredCount: w.delivered.length,
        searchedCount: w.searched.length,
      });
    }
    if (req.method === 'POST' && path === '/_control/ledger/reset') {
      api.resetLedger();
      return json(res, 200, { ok: true });
    }
    if (req.method === 'GET' && path === '/_control/stats') return json(res, 200, api.stats());
    if (req.method === 'GET' && path === '/_control/compliance') {
      const decisions = api.complianceLedger();
      return json(res, 200, { decisions, count: decisions.length, jobs: compliance.jobCount() });
    }
    if (req.method === 'POST' && path === '/_control/faults') {
      const body = (await readBody(req)) as StandinFaults;
      return json(res, 200, api.setFaults(body));
    }
    if (req.method === 'POST' && path === '/_control/rate') {
      const body = (await readBody(req)) as { rate?: unknown };
      if (typeof body.rate !== 'number' || !(body.rate >= 0))
        return json(res, 400, { error: 'expected {"rate": <posts/s>}' });
      api.setRate(body.rate);
      return json(res, 200, { rate });
    }
    return json(res, 404, { error: 'not found' });
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    const path = url.pathname.replace(/\/+$/, '');
    const run = async (): Promise<void> => {
      if (path.startsWith('/_control/')) return handleControl(req, res, path);
      if (path === STREAM_PATH && req.method === 'GET') return handleStream(req, res, url);
      const searchEndpoint = SEARCH_PATHS[path];
      if (searchEndpoint && req.method === 'GET') return handleSearch(req, res, url, searchEndpoint);
      if (path.startsWith(COMPLIANCE_JOBS_PATH) || path.startsWith('/_storage/compliance/'))
        return handleCompliance(req, res, url, path);
      if (path === RULES_PATH) {
        if (!authorized(req)) return unauthorized(res);
        if (req.method === 'GET') return handleRulesGet(res, url);
        if (req.method === 'POST') return handleRulesPost(req, res, url);
      }
      return problem(res, 404, {
        title: 'Not Found Error',
        detail: `no route for ${req.method} ${path}`,
        type: 'about:blank',
      });
    };
    run().catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    ...api,
    close: async () => {
      clearInterval(timer);
      if (live?.keepAlive) clearInterval(live.keepAlive);
      live = undefined;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
