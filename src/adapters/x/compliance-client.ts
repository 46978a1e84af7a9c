/**
 * X API v2 batch compliance (`/2/compliance/jobs`, type `tweets`): create a job, upload the post ids
 * to its signed `upload_url`, read its status, download its result from the signed `download_url`.
 * Plain `fetch` (Node 20), like the search client.
 *
 * The bearer token goes to X's API host only: the upload and download URLs are pre-signed storage
 * URLs on another host (Google Cloud Storage on X), so they are called without it. Errors never
 * carry the token, nor the signed URLs (their query string is a credential too): 401/403 of the API
 * are an `XAuthError`, the usage cap an `XUsageCapError`, a 429 an {@link XComplianceRateLimitError},
 * anything else an `XApiError` naming the endpoint.
 *
 * The result file is newline-delimited JSON, one object per post with a compliance event
 * (`{"id","action","created_at","redacted_at","reason"}`); posts without one are not listed.
 * {@link parseComplianceResults} reads it leniently: a line that is not such an object is counted,
 * not fatal.
 */
import { XApiError, XAuthError, XUsageCapError, isUsageCapProblem, problemText } from './errors';

export type ComplianceJobStatus = 'created' | 'in_progress' | 'complete' | 'failed' | 'expired';

export interface ComplianceJob {
  id: string;
  status: ComplianceJobStatus;
  name?: string;
  uploadUrl: string;
  uploadExpiresAt?: string;
  downloadUrl: string;
  downloadExpiresAt?: string;
  createdAt?: string;
}

/** One compliance event of a result file. */
export interface ComplianceResult {
  id: string;
  /** X's action, e.g. `delete`. */
  action: string;
  /** X's reason, e.g. `deleted`, `suspended`, `protected`, `scrub_geo`. */
  reason?: string;
  /** The post's creation time (ISO). */
  createdAt?: string;
  /** When the event happened (ISO). */
  redactedAt?: string;
}

export interface ParsedResults {
  results: ComplianceResult[];
  /** Lines that were not a compliance event object. */
  unreadable: number;
}

/** HTTP 429 from the jobs API: wait until `resetAtMs`. */
export class XComplianceRateLimitError extends Error {
  override readonly name = 'XComplianceRateLimitError';
  constructor(readonly resetAtMs: number | undefined) {
    super(
      `X compliance jobs rate limit reached${resetAtMs ? `; resets at ${new Date(resetAtMs).toISOString()}` : ''}`,
    );
  }
}

export interface XComplianceClientOptions {
  /** `X_API_BASE_URL`. */
  baseUrl: string;
  /** Secret. */
  bearerToken: string;
  /** Per-request timeout. @default 60 000 ms */
  timeoutMs?: number;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

const JOB_STATUSES: readonly ComplianceJobStatus[] = [
  'created',
  'in_progress',
  'complete',
  'failed',
  'expired',
];

/** Reads a job object (`data`) of X's answer; undefined when it is not one. */
export function parseComplianceJob(data: unknown): ComplianceJob | undefined {
  if (!isObject(data)) return undefined;
  const id = str(data.id);
  const status = data.status as ComplianceJobStatus;
  const uploadUrl = str(data.upload_url);
  const downloadUrl = str(data.download_url);
  if (!id || !JOB_STATUSES.includes(status) || !uploadUrl || !downloadUrl) return undefined;
  const name = str(data.name);
  const uploadExpiresAt = str(data.upload_expires_at);
  const downloadExpiresAt = str(data.download_expires_at);
  const createdAt = str(data.created_at);
  return {
    id,
    status,
    uploadUrl,
    downloadUrl,
    ...(name ? { name } : {}),
    ...(uploadExpiresAt ? { uploadExpiresAt } : {}),
    ...(downloadExpiresAt ? { downloadExpiresAt } : {}),
    ...(createdAt ? { createdAt } : {}),
  };
}

/** Parses a result file (NDJSON; blank lines and `\r` ignored). */
export function parseComplianceResults(text: string): ParsedResults {
  const out: ParsedResults = { results: [], unreadable: 0 };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      out.unreadable += 1;
      continue;
    }
    const id = isObject(v) ? v.id : undefined;
    const idText = typeof id === 'string' ? id : typeof id === 'number' ? String(id) : undefined;
    if (!isObject(v) || !idText || !/^\d{1,19}$/.test(idText)) {
      out.unreadable += 1;
      continue;
    }
    const reason = str(v.reason);
    const createdAt = str(v.created_at);
    const redactedAt = str(v.redacted_at);
    out.results.push({
      id: idText,
      action: str(v.action) ?? 'delete',
      ...(reason ? { reason } : {}),
      ...(createdAt && Number.isFinite(Date.parse(createdAt)) ? { createdAt } : {}),
      ...(redactedAt && Number.isFinite(Date.parse(redactedAt)) ? { redactedAt } : {}),
    });
  }
  return out;
}

/** A URL without its query string (signed URLs carry credentials there), for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

export class XComplianceClient {
  constructor(private readonly opts: XComplianceClientOptions) {}

  private get timeout() {
    return AbortSignal.timeout(this.opts.timeoutMs ?? 60_000);
  }

  /** A call of the jobs API, with the bearer token; returns the parsed JSON body of a 200. */
  private async api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const endpoint = `${method} ${path.replace(/\/\d+$/, '/:id')}`;
    let res: Response;
    try {
      res = await fetch(`${this.opts.baseUrl.replace(/\/+$/, '')}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.opts.bearerToken}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: this.timeout,
      });
    } catch (err) {
      throw new XApiError(`X compliance request failed: ${(err as Error).message}`, endpoint);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status === 200) return parsed;
    const detail = problemText(parsed) || text.slice(0, 200);
    if (isUsageCapProblem(res.status, parsed)) throw new XUsageCapError(res.status, detail, endpoint);
    if (res.status === 401 || res.status === 403) throw new XAuthError(res.status, detail, endpoint);
    if (res.status === 429) {
      const reset = Number(res.headers.get('x-rate-limit-reset'));
      throw new XComplianceRateLimitError(Number.isFinite(reset) && reset > 0 ? reset * 1000 : undefined);
    }
    throw new XApiError(`X answered HTTP ${res.status}${detail ? `: ${detail}` : ''}`, endpoint, res.status);
  }

  private job(body: unknown, endpoint: string): ComplianceJob {
    const job = parseComplianceJob(isObject(body) ? body.data : undefined);
    if (!job) throw new XApiError('X answered HTTP 200 without a compliance job', endpoint, 200);
    return job;
  }

  /** `POST /2/compliance/jobs` for post ids. `name` (≤ 64 characters) names the job in X's listings. */
  async createJob(name?: string): Promise<ComplianceJob> {
    const body = await this.api('POST', '/2/compliance/jobs', {
      type: 'tweets',
      ...(name ? { name: name.slice(0, 64) } : {}),
    });
    return this.job(body, 'POST /2/compliance/jobs');
  }

  /** `GET /2/compliance/jobs/:id`. */
  async getJob(jobId: string): Promise<ComplianceJob> {
    if (!/^\d{1,19}$/.test(jobId))
      throw new XApiError(`not a compliance job id: ${jobId}`, 'GET /2/compliance/jobs/:id');
    return this.job(await this.api('GET', `/2/compliance/jobs/${jobId}`), 'GET /2/compliance/jobs/:id');
  }

  /** `PUT upload_url`: the ids, one per line. No bearer token (a signed URL). */
  async upload(job: Pick<ComplianceJob, 'id' | 'uploadUrl'>, ids: readonly string[]): Promise<void> {
    const endpoint = `PUT upload_url of job ${job.id}`;
    let res: Response;
    try {
      res = await fetch(job.uploadUrl, {
        method: 'PUT',
        headers: { 'content-type': 'text/plain' },
        body: ids.join('\n') + '\n',
        signal: this.timeout,
      });
    } catch (err) {
      throw new XApiError(
        `upload to ${redactUrl(job.uploadUrl)} failed: ${(err as Error).message}`,
        endpoint,
      );
    }
    const text = await res.text();
    if (res.status < 200 || res.status >= 300)
      throw new XApiError(
        `upload to ${redactUrl(job.uploadUrl)} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        endpoint,
        res.status,
      );
  }

  /** `GET download_url` of a complete job: its result file, parsed. No bearer token (a signed URL). */
  async download(job: Pick<ComplianceJob, 'id' | 'downloadUrl'>): Promise<ParsedResults> {
    const endpoint = `GET download_url of job ${job.id}`;
    let res: Response;
    try {
      res = await fetch(job.downloadUrl, { signal: this.timeout });
    } catch (err) {
      throw new XApiError(
        `download from ${redactUrl(job.downloadUrl)} failed: ${(err as Error).message}`,
        endpoint,
      );
    }
    const text = await res.text();
    if (res.status !== 200)
      throw new XApiError(
        `download from ${redactUrl(job.downloadUrl)} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        endpoint,
        res.status,
      );
    return parseComplianceResults(text);
  }
}
