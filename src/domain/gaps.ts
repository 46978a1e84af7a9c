/**
 * The gap ledger: every interval in which the stream was not delivering, and what became of it.
 * Sandbox-safe (the supervisor workflow keeps the ledger; the stream activity finds gaps within one
 * connection's life; the gap-fill activity fills them).
 *
 * A gap runs from the `created_at` of the last post received before the stream stopped delivering
 * (a disconnect, a stall, a crashed worker, a pause, a back-off, a continue-as-new) to the
 * `created_at` of the first post received after it delivered again. Both ends are X's clock, so
 * the gap is exactly what recent search must cover; the fill widens it by a margin either side
 * (posts around the edges are read twice, and the loader's insert-if-absent keeps one row).
 */

export type GapReason =
  /** The connection ended within one stream activity attempt (`disconnect:<reason>`). */
  | `disconnect:${string}`
  /** A new stream activity attempt after a crash, a worker shutdown or a heartbeat timeout. */
  | 'worker-restart'
  /** The stream was paused (by an operator, a failure, the budget or X's usage cap). */
  | 'paused'
  /** The supervisor continued as new (the stream is closed and reopened). */
  | 'continue-as-new'
  /** The stream activity failed and was scheduled again. */
  | 'stream-restart';

export type GapState =
  /** Waiting to be searched (its end plus the margin must be old enough for search). */
  | 'pending'
  | 'filling'
  | 'filled'
  /** Part of it could not be searched: a rule search cannot run, or older than recent search reaches. */
  | 'unrecoverable'
  /** An intentional pause with `X_GAP_FILL_ON_RESUME=false`, or gap fill turned off. */
  | 'skipped';

/** A closed gap as the stream activity reports it. */
export interface GapReport {
  /** Unique and stable (the reporter and a counter), so a re-delivered report is recorded once. */
  id: string;
  /** ISO `created_at` of the last post before the gap. */
  start: string;
  /** ISO `created_at` of the first post after it. */
  end: string;
  reason: GapReason;
}

/** A rule the search endpoint refused for a gap, with X's reason. */
export interface UnsearchableRule {
  rule: string;
  reason: string;
}

export interface Gap extends GapReport {
  state: GapState;
  /** ISO time it was recorded. */
  recordedAt: string;
  /** Posts search returned for it (margins included). */
  postsFound?: number;
  /** Of those, published to the topic. */
  postsPublished?: number;
  unsearchable?: UnsearchableRule[];
  /** Why it is unrecoverable or why the last fill attempt failed. */
  detail?: string;
  /** `recent` or `all`. */
  endpoint?: SearchEndpoint;
  finishedAt?: string;
}

export type SearchEndpoint = 'recent' | 'all';

/** What a fill of one gap returns (the gap-fill child sends it to the supervisor). */
export interface GapFillResult {
  gapId: string;
  state: 'filled' | 'unrecoverable';
  postsFound: number;
  postsPublished: number;
  /** Posts read from X for this gap (what the read budget counts). */
  postsRead: number;
  unsearchable: UnsearchableRule[];
  endpoint?: SearchEndpoint;
  detail?: string;
}

export interface GapCounts {
  found: number;
  open: number;
  pending: number;
  filled: number;
  unrecoverable: number;
  skipped: number;
  postsFilled: number;
}

/** Recent search reaches back 7 days. */
export const RECENT_SEARCH_WINDOW_MS = 7 * 24 * 3600_000;
/** X refuses an `end_time` less than 10 s before the request. */
export const SEARCH_MIN_AGE_MS = 10_000;
/** Finished gaps kept in the ledger (unfinished ones are always kept). */
export const FINISHED_GAPS_KEPT = 50;

export function isFinished(g: Gap): boolean {
  return g.state === 'filled' || g.state === 'unrecoverable' || g.state === 'skipped';
}

/** Adds reported gaps not yet in the ledger (by id); an empty or inverted interval is ignored. */
export function recordGaps(
  ledger: Gap[],
  reports: readonly GapReport[],
  nowIso: string,
  skip: (r: GapReport) => boolean,
): Gap[] {
  const known = new Set(ledger.map((g) => g.id));
  const added: Gap[] = [];
  for (const r of reports) {
    if (known.has(r.id)) continue;
    const start = Date.parse(r.start);
    const end = Date.parse(r.end);
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) continue;
    known.add(r.id);
    added.push({ ...r, state: skip(r) ? 'skipped' : 'pending', recordedAt: nowIso });
  }
  return added.length === 0 ? ledger : trimLedger([...ledger, ...added]);
}

/** Keeps every unfinished gap and the newest {@link FINISHED_GAPS_KEPT} finished ones, in order. */
export function trimLedger(ledger: Gap[]): Gap[] {
  const finished = ledger.filter(isFinished);
  if (finished.length <= FINISHED_GAPS_KEPT) return ledger;
  const drop = new Set(finished.slice(0, finished.length - FINISHED_GAPS_KEPT).map((g) => g.id));
  return ledger.filter((g) => !drop.has(g.id));
}

/** Applies a fill result to its gap (unknown ids are ignored: the ledger was trimmed). */
export function applyFillResult(ledger: Gap[], r: GapFillResult, nowIso: string): Gap[] {
  return trimLedger(
    ledger.map((g) =>
      g.id !== r.gapId
        ? g
        : {
            ...g,
            state: r.state,
            postsFound: r.postsFound,
            postsPublished: r.postsPublished,
            unsearchable: r.unsearchable,
            endpoint: r.endpoint,
            detail: r.detail,
            finishedAt: nowIso,
          },
    ),
  );
}

export function countGaps(
  ledger: readonly Gap[],
  openGapSince: string | undefined,
  totals: { found: number; postsFilled: number },
): GapCounts {
  const by = (s: GapState) => ledger.filter((g) => g.state === s).length;
  return {
    found: totals.found,
    open: openGapSince ? 1 : 0,
    pending: by('pending') + by('filling'),
    filled: by('filled'),
    unrecoverable: by('unrecoverable'),
    skipped: by('skipped'),
    postsFilled: totals.postsFilled,
  };
}

/**
 * The search window of a gap: widened by `marginMs` either side (end exclusive), `end` clamped to
 * X's rule that `end_time` be at least `minAgeMs` (10 s) before the request.
 */
export function searchWindow(
  gap: Pick<GapReport, 'start' | 'end'>,
  marginMs: number,
  nowMs: number,
  minAgeMs = SEARCH_MIN_AGE_MS,
): { startMs: number; endMs: number } {
  const startMs = Date.parse(gap.start) - marginMs;
  const endMs = Math.min(Date.parse(gap.end) + marginMs + 1, nowMs - minAgeMs);
  return { startMs, endMs };
}

/** When (epoch ms) the whole widened window of a gap can be searched. */
export function searchableAt(gap: Pick<GapReport, 'end'>, marginMs: number): number {
  return Date.parse(gap.end) + marginMs + 1 + SEARCH_MIN_AGE_MS + 1000;
}

/**
 * Which endpoint can search a window starting at `startMs`: `recent` within 7 days (with a minute of
 * slack for the request's own latency), `all` when the app has full-archive access, else none.
 */
export function endpointFor(
  startMs: number,
  nowMs: number,
  fullArchive: boolean,
): SearchEndpoint | undefined {
  if (startMs > nowMs - RECENT_SEARCH_WINDOW_MS + 60_000) return 'recent';
  return fullArchive ? 'all' : undefined;
}

/** The gap-fill settings the supervisor resolves from the stream worker's configuration. */
export interface GapFillSettings {
  /** `X_GAP_FILL`: search every gap (false: gaps are recorded, counted and skipped). */
  enabled: boolean;
  /** `X_GAP_FILL_ON_RESUME`: fill the gap an intentional pause left. */
  onResume: boolean;
  /** `X_GAP_MARGIN_SECONDS` × 1000: the search window is the gap widened by this either side. */
  marginMs: number;
  /** `X_FULL_ARCHIVE_SEARCH`: the app may call `/2/tweets/search/all` (gaps older than 7 days). */
  fullArchive: boolean;
}

export const DEFAULT_GAP_FILL: GapFillSettings = {
  enabled: true,
  onResume: true,
  marginMs: 30_000,
  fullArchive: false,
};

/** Input of the `fillGap` activity (stream task queue: it holds the X token and the publisher). */
export interface FillGapInput {
  /** The supervisor's workflow id (for logs and the publish attributes). */
  supervisorWorkflowId: string;
  gap: GapReport;
  /**
   * The rules to search for. X's rule id becomes each post's `matching_rules` id, as on the stream;
   * a rule given without one is looked up in X's active rules by its value.
   */
  rules: { id?: string; value: string; tag?: string }[];
  marginMs: number;
  fullArchive: boolean;
}

/** What the gap-fill child shows in its `gapFillProgress` query. */
export interface GapFillProgress {
  /** Gap ids waiting (oldest first). */
  queued: string[];
  /** The gap being searched now, with when its window became searchable. */
  current?: { id: string; since: string };
  filled: number;
  unrecoverable: number;
  postsFound: number;
  postsPublished: number;
}

/** A gap not closed yet: the stream stopped delivering at `start` (X's clock) for `reason`. */
export interface OpenGap {
  start: string;
  reason: GapReason;
}

/**
 * Finds the gaps of one stream activity attempt: a gap opens when the stream stops delivering (a
 * disconnect, a stall) at the `created_at` of the last post received, or at the attempt's start for
 * the gap it was started across (after a pause, a crash, a continue-as-new), and closes at the
 * `created_at` of the next post. Closed gaps stay pending until a delivered progress report carried
 * them ({@link acknowledge}); an attempt that dies hands them, and any open gap, to the next one
 * through its heartbeat.
 */
export class GapTracker {
  private openGap: OpenGap | undefined;
  private closed: GapReport[] = [];
  private counter = 0;
  private lastCreatedMs = Number.NEGATIVE_INFINITY;
  lastPostCreatedAt: string | undefined;

  constructor(
    /** Prefix of the gap ids (the reporter: run, activity and attempt), so each id is unique. */
    private readonly idPrefix: string,
    carried: { open?: OpenGap; closed?: GapReport[]; lastPostCreatedAt?: string } = {},
  ) {
    this.openGap = carried.open;
    this.closed = [...(carried.closed ?? [])];
    if (carried.lastPostCreatedAt) this.notePost(carried.lastPostCreatedAt);
  }

  /** The stream stopped delivering; the gap starts at the last post (or `fallbackStart` before any). */
  stopped(reason: GapReason, fallbackStart: string): void {
    this.openGap ??= { start: this.lastPostCreatedAt ?? fallbackStart, reason };
  }

  /** A post arrived: it closes the open gap, if any. */
  post(createdAt: string): void {
    if (this.openGap) {
      this.counter += 1;
      this.closed.push({
        id: `${this.idPrefix}/${this.counter}`,
        start: this.openGap.start,
        end: createdAt,
        reason: this.openGap.reason,
      });
      this.openGap = undefined;
    }
    this.notePost(createdAt);
  }

  private notePost(createdAt: string): void {
    const t = Date.parse(createdAt);
    if (Number.isFinite(t) && t > this.lastCreatedMs) {
      this.lastCreatedMs = t;
      this.lastPostCreatedAt = createdAt;
    }
  }

  get open(): OpenGap | undefined {
    return this.openGap;
  }

  /** Closed gaps not yet acknowledged, oldest first. */
  pending(): GapReport[] {
    return [...this.closed];
  }

  /** The supervisor has these ids (a report carrying them was delivered). */
  acknowledge(ids: readonly string[]): void {
    const done = new Set(ids);
    this.closed = this.closed.filter((g) => !done.has(g.id));
  }
}
