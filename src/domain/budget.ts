/**
 * The read budget: posts read from X (stream and search) counted per UTC day and per billing month
 * (the UTC calendar month), carried by the supervisor across continue-as-new. Sandbox-safe.
 *
 * The count is of posts *read*, an upper bound of what X bills: X does not charge a post read again
 * on the same UTC day, so the margins of a gap fill, which re-read posts the stream delivered that
 * day, are counted here but mostly not billed. The estimated cost uses the same count.
 */

export interface ReadUsage {
  /** `YYYY-MM-DD` (UTC) the day counter belongs to. */
  day: string;
  dayPosts: number;
  /** `YYYY-MM` (UTC). */
  month: string;
  monthPosts: number;
  /** Of `monthPosts`, read by search (gap fill). */
  monthSearchPosts: number;
  /** The highest warning level already raised this month (0, 80 or 100), so each is raised once. */
  warnedPercent: number;
}

export interface BudgetSettings {
  /** Posts per billing month; undefined = no limit. */
  monthlyPosts?: number;
  costPerPostUsd: number;
}

export type BudgetLevel = 'ok' | 'warn' | 'exhausted';

export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

export function emptyUsage(nowMs: number): ReadUsage {
  return {
    day: dayOf(nowMs),
    dayPosts: 0,
    month: monthOf(nowMs),
    monthPosts: 0,
    monthSearchPosts: 0,
    warnedPercent: 0,
  };
}

/** Rolls the day and month counters over when `nowMs` is in a later day or month. */
export function rollUsage(u: ReadUsage, nowMs: number): ReadUsage {
  const day = dayOf(nowMs);
  const month = monthOf(nowMs);
  if (u.day === day && u.month === month) return u;
  return {
    ...u,
    day,
    dayPosts: u.day === day ? u.dayPosts : 0,
    month,
    monthPosts: u.month === month ? u.monthPosts : 0,
    monthSearchPosts: u.month === month ? u.monthSearchPosts : 0,
    warnedPercent: u.month === month ? u.warnedPercent : 0,
  };
}

export function addReads(u: ReadUsage, posts: number, nowMs: number, search = false): ReadUsage {
  const r = rollUsage(u, nowMs);
  if (posts <= 0) return r;
  return {
    ...r,
    dayPosts: r.dayPosts + posts,
    monthPosts: r.monthPosts + posts,
    monthSearchPosts: r.monthSearchPosts + (search ? posts : 0),
  };
}

export function budgetLevel(u: ReadUsage, b: BudgetSettings): BudgetLevel {
  if (b.monthlyPosts === undefined) return 'ok';
  if (u.monthPosts >= b.monthlyPosts) return 'exhausted';
  if (u.monthPosts >= 0.8 * b.monthlyPosts) return 'warn';
  return 'ok';
}

/** Epoch ms of the first instant of the next UTC month. */
export function nextMonthStart(nowMs: number): number {
  const d = new Date(nowMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

export function estimatedCostUsd(posts: number, b: BudgetSettings): number {
  return Math.round(posts * b.costPerPostUsd * 100) / 100;
}

/** What the `status` query shows of the budget. */
export interface BudgetStatus extends ReadUsage {
  monthlyPosts?: number;
  costPerPostUsd: number;
  estimatedCostTodayUsd: number;
  estimatedCostMonthUsd: number;
  level: BudgetLevel;
  /** Set while the stream is paused by the budget or X's usage cap: why, and until when. */
  hold?: { by: 'budget' | 'x-usage-cap'; detail: string; until: string };
}

export function budgetStatus(u: ReadUsage, b: BudgetSettings, hold?: BudgetStatus['hold']): BudgetStatus {
  return {
    ...u,
    ...(b.monthlyPosts !== undefined ? { monthlyPosts: b.monthlyPosts } : {}),
    costPerPostUsd: b.costPerPostUsd,
    estimatedCostTodayUsd: estimatedCostUsd(u.dayPosts, b),
    estimatedCostMonthUsd: estimatedCostUsd(u.monthPosts, b),
    level: budgetLevel(u, b),
    ...(hold ? { hold } : {}),
  };
}
/** A read-budget warning for the stream worker to log, count and send to the webhook. */
export interface BudgetNotice {
  streamName: string;
  level: 'warn' | 'exhausted' | 'x-usage-cap';
  status: BudgetStatus;
}
