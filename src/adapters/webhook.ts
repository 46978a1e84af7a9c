/**
 * JSON alerts to a webhook (Slack/Teams/PagerDuty-style incoming webhook or any HTTP endpoint).
 * Each attempt has a timeout; network errors, timeouts, 408, 429 and 5xx are retried with
 * exponential back-off up to `maxAttempts`; other 4xx are not. It never throws: the caller gets a
 * {@link WebhookResult}, so an unreachable webhook can never fail or block the pipeline for long.
 */
import type { Logger } from '../observability/logger';

export interface WebhookOptions {
  /** Per-attempt timeout. @default 5000 */
  timeoutMs?: number;
  /** Attempts in total. @default 3 */
  maxAttempts?: number;
  /** Back-off before the second attempt, doubled each time. @default 500 */
  initialBackoffMs?: number;
  /** Injected for tests. @default globalThis.fetch */
  fetchImpl?: typeof fetch;
  logger?: Logger;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export interface WebhookResult {
  delivered: boolean;
  attempts: number;
  /** HTTP status of the last attempt, when one was received. */
  status?: number;
  error?: string;
}

const retryableStatus = (s: number) => s === 408 || s === 429 || s >= 500;

/** Redacts the path and query of a webhook URL (they often carry the secret). */
export function redactUrl(url: string): string {
  const m = /^(https?:\/\/[^/?#]+)/i.exec(url);
  return m ? `${m[1]}/…` : '<invalid url>';
}

/** POSTs `body` as JSON to `url`; retried and bounded; never throws. */
export async function postJson(
  url: string,
  body: unknown,
  opts: WebhookOptions = {},
): Promise<WebhookResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
  const fetchImpl = opts.fetchImpl ?? globalThis.fetch;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let backoff = opts.initialBackoffMs ?? 500;
  const payload = JSON.stringify(body);
  let last: WebhookResult = { delivered: false, attempts: 0 };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    try {
      const res = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Drain the body so the connection is released.
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { delivered: true, attempts: attempt, status: res.status };
      last = { delivered: false, attempts: attempt, status: res.status, error: `HTTP ${res.status}` };
      if (!retryableStatus(res.status)) break;
    } catch (err) {
      const e = err as Error;
      const error = e.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : e.message;
      last = { delivered: false, attempts: attempt, error };
    }
    opts.logger?.warn({ webhook: redactUrl(url), attempt, error: last.error }, 'webhook attempt failed');
    if (attempt < maxAttempts) {
      await sleep(backoff);
      backoff *= 2;
    }
  }
  opts.logger?.error({ webhook: redactUrl(url), ...last }, 'webhook not delivered');
  return last;
}

/** A function that sends one alert; what the activities depend on. */
export type AlertSender = (alert: unknown) => Promise<WebhookResult>;

export function createWebhookAlerter(url: string, opts: WebhookOptions = {}): AlertSender {
  return (alert) => postJson(url, alert, opts);
}
