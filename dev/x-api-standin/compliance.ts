/**
 * Batch compliance for the stand-in (X API v2 `/2/compliance/jobs`): jobs, their signed upload and
 * download URLs, and the compliance events the stand-in decides by itself. `server.ts` does the HTTP
 * routing and the bearer auth; this module keeps the jobs and the ledger and answers each request.
 *
 * The flow, as on X:
 * - `POST /2/compliance/jobs` `{type: 'tweets'|'users', name?, resumable?}` → `{data: job}` with
 *   status `created`, an `upload_url` (valid `uploadTtlMs`, X's 15 minutes) and a `download_url`
 *   (valid a week from creation, like X's);
 * - `PUT upload_url` with a text body of ids, one per line (no bearer token: the URL is signed, as
 *   X's Google Cloud Storage URLs are) → the job goes `in_progress`, and `complete` after
 *   `processingMs` (or `failed`, with the `complianceJobsFail` fault);
 * - `GET /2/compliance/jobs/:id` → `{data: job}`; `GET /2/compliance/jobs?type=tweets[&status=]`
 *   → `{data: [jobs], meta: {result_count}}`, newest first;
 * - `GET download_url` (signed, no bearer) once complete → newline-delimited JSON, one object per
 *   id with a compliance event: `{"id","action":"delete","created_at","redacted_at","reason"}`.
 *   Ids without an event are left out, as X does.
 *
 * Which ids have an event: among the uploaded ids of posts this stand-in created (its seed's
 * snowflake worker bits, see `corpus.ts`), a deterministic `fraction` (a hash of seed and id), so
 * every job that uploads an id answers the same for it, and a restarted stand-in with the same seed
 * too. The reason is chosen from the same hash among X's post reasons (`deleted`, `suspended`,
 * `protected`, `deactivated`, `scrub_geo`); `redacted_at` is when the stand-in first decided the id.
 * Every decision handed out is recorded in the ledger (`ledger()`, `GET /_control/compliance`), one
 * entry per job and id. `users` jobs are accepted and answer no events.
 */
import { createHash, randomBytes } from 'node:crypto';

export type ComplianceJobType = 'tweets' | 'users';
export type ComplianceJobStatus = 'created' | 'in_progress' | 'complete' | 'failed' | 'expired';

/** A job as X returns it under `data`. */
export interface ComplianceJobJson {
  id: string;
  type: ComplianceJobType;
  name?: string;
  resumable: boolean;
  status: ComplianceJobStatus;
  upload_url: string;
  upload_expires_at: string;
  download_url: string;
  download_expires_at: string;
  created_at: string;
}

/** One line of a job's result file. */
export interface ComplianceEvent {
  id: string;
  action: 'delete';
  /** The post's creation time. */
  created_at: string;
  /** When the event happened (here: when the stand-in first decided it). */
  redacted_at: string;
  reason: string;
}

/** One ledger entry: what the stand-in decided for an id in a job. */
export interface ComplianceDecision extends ComplianceEvent {
  jobId: string;
}

export interface ComplianceOptions {
  seed: number;
  /** Share of the stand-in's own uploaded posts that get an event. @default 0.2 */
  fraction?: number;
  /** Time from upload to `complete`. @default 500 ms */
  processingMs?: number;
  /** How long the upload URL is valid. @default 15 minutes (X's) */
  uploadTtlMs?: number;
  /** The post's creation time, if the stand-in still knows it. */
  createdAtOf?: (id: string) => string | undefined;
  now?: () => number;
}

export interface ComplianceFaults {
  /** The next N uploaded jobs end `failed` instead of `complete`. */
  complianceJobsFail?: number;
}

interface Job {
  json: Omit<ComplianceJobJson, 'status' | 'upload_url' | 'download_url'>;
  status: ComplianceJobStatus;
  signature: string;
  ids: string[];
  readyAtMs?: number;
  fails: boolean;
}

export const COMPLIANCE_JOBS_PATH = '/2/compliance/jobs';
/** Where the signed URLs point (on the stand-in itself; X's are Google Cloud Storage URLs). */
export const COMPLIANCE_UPLOAD_PATH = '/_storage/compliance/upload';
export const COMPLIANCE_DOWNLOAD_PATH = '/_storage/compliance/download';

const REASONS = ['deleted', 'deleted', 'suspended', 'protected', 'deactivated', 'scrub_geo'] as const;
const WEEK_MS = 7 * 24 * 3600_000;
/** X's snowflake epoch (2010-11-04). */
const TWEPOCH = 1288834974657n;

/** A number in [0, 1) and a second one, both stable for (seed, id). */
function hashOf(seed: number, id: string): [number, number] {
  const h = createHash('sha256').update(`${seed}:${id}`).digest();
  return [h.readUInt32BE(0) / 2 ** 32, h.readUInt32BE(4) / 2 ** 32];
}

/** Was `id` minted by a stand-in corpus of `seed` (a post id: snowflake worker bits, kind 0)? */
export function isStandinPostId(seed: number, id: string): boolean {
  if (!/^\d{1,19}$/.test(id)) return false;
  const worker = Number((BigInt(id) >> 12n) & 0x3ffn);
  return worker === ((seed >>> 0) % 512) * 2;
}

/** The stand-in's decision for `id`: the X reason of its event, or undefined (no event). */
export function decideCompliance(seed: number, id: string, fraction: number): string | undefined {
  if (!isStandinPostId(seed, id)) return undefined;
  const [pick, reason] = hashOf(seed, id);
  if (pick >= fraction) return undefined;
  return REASONS[Math.floor(reason * REASONS.length)]!;
}

/** The time in a snowflake id (a fallback `created_at` for posts out of the history). */
function snowflakeTime(id: string): string {
  return new Date(Number((BigInt(id) >> 22n) + TWEPOCH)).toISOString();
}

/** Parses an upload body: one id per line (blank lines and `\r` ignored). */
export function parseIdFile(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

export interface ComplianceResponse {
  status: number;
  body: unknown;
  contentType?: string;
}

export function createComplianceJobs(opts: ComplianceOptions) {
  const fraction = opts.fraction ?? 0.2;
  const processingMs = opts.processingMs ?? 500;
  const uploadTtlMs = opts.uploadTtlMs ?? 15 * 60_000;
  const now = opts.now ?? Date.now;
  const jobs = new Map<string, Job>();
  const ledger: ComplianceDecision[] = [];
  const inLedger = new Set<string>();
  const firstDecided = new Map<string, string>();
  let seq = 0;
  let faults: ComplianceFaults = {};

  /** Moves a job along the clock: expired uploads, finished processing. */
  const refresh = (job: Job): void => {
    const t = now();
    if (job.status === 'created' && t >= Date.parse(job.json.upload_expires_at)) job.status = 'expired';
    if (job.status === 'in_progress' && job.readyAtMs !== undefined && t >= job.readyAtMs) {
      job.status = job.fails ? 'failed' : 'complete';
    }
  };

  const publicJob = (job: Job, base: string): ComplianceJobJson => {
    refresh(job);
    return {
      ...job.json,
      status: job.status,
      upload_url: `${base}${COMPLIANCE_UPLOAD_PATH}/${job.json.id}?signature=${job.signature}`,
      download_url: `${base}${COMPLIANCE_DOWNLOAD_PATH}/${job.json.id}?signature=${job.signature}`,
    };
  };

  const invalid = (detail: string, parameter: string, value: unknown): ComplianceResponse => ({
    status: 400,
    contentType: 'application/problem+json',
    body: {
      title: 'Invalid Request',
      detail: 'One or more parameters to your request was invalid.',
      type: 'https://api.twitter.com/2/problems/invalid-request',
      errors: [{ parameters: { [parameter]: [String(value)] }, message: detail }],
    },
  });

  const notFound = (id: string): ComplianceResponse => ({
    status: 404,
    contentType: 'application/problem+json',
    body: {
      title: 'Not Found Error',
      detail: `Could not find compliance job with id: [${id}].`,
      type: 'https://api.twitter.com/2/problems/resource-not-found',
    },
  });

  /** The signed-URL check of storage: the job exists and the signature is its own. */
  const signed = (id: string, signature: string | null): Job | undefined => {
    const job = jobs.get(id);
    return job && signature === job.signature ? job : undefined;
  };

  const storageError = (status: number, code: string): ComplianceResponse => ({
    status,
    contentType: 'application/xml',
    body: `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code></Error>`,
  });

  return {
    /** `POST /2/compliance/jobs`. */
    create(body: unknown, base: string): ComplianceResponse {
      const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
      if (b.type !== 'tweets' && b.type !== 'users')
        return invalid('type must be tweets or users', 'type', b.type);
      if (b.name !== undefined && (typeof b.name !== 'string' || b.name.length > 64))
        return invalid('name must be a string of at most 64 characters', 'name', b.name);
      const t = now();
      // A 19-digit id like X's, unique per stand-in run.
      const id = (BigInt(t) * 1_000_000n + BigInt(seq++ % 1_000_000)).toString();
      const job: Job = {
        json: {
          id,
          type: b.type,
          ...(typeof b.name === 'string' ? { name: b.name } : {}),
          resumable: b.resumable === true,
          upload_expires_at: new Date(t + uploadTtlMs).toISOString(),
          download_expires_at: new Date(t + WEEK_MS).toISOString(),
          created_at: new Date(t).toISOString(),
        },
        status: 'created',
        signature: randomBytes(12).toString('hex'),
        ids: [],
        fails: false,
      };
      jobs.set(id, job);
      return { status: 200, body: { data: publicJob(job, base) } };
    },

    /** `GET /2/compliance/jobs/:id`. */
    get(id: string, base: string): ComplianceResponse {
      const job = jobs.get(id);
      if (!job) return notFound(id);
      return { status: 200, body: { data: publicJob(job, base) } };
    },

    /** `GET /2/compliance/jobs?type=…[&status=…]`, newest first. */
    list(params: URLSearchParams, base: string): ComplianceResponse {
      const type = params.get('type');
      if (type !== 'tweets' && type !== 'users') return invalid('type must be tweets or users', 'type', type);
      const status = params.get('status');
      const data = [...jobs.values()]
        .filter((j) => j.json.type === type)
        .map((j) => publicJob(j, base))
        .filter((j) => status === null || j.status === status)
        .reverse();
      return {
        status: 200,
        body: data.length > 0 ? { data, meta: { result_count: data.length } } : { meta: { result_count: 0 } },
      };
    },

    /** `PUT <upload_url>`: the id file. */
    upload(id: string, signature: string | null, text: string): ComplianceResponse {
      const job = signed(id, signature);
      if (!job) return storageError(403, 'AccessDenied');
      refresh(job);
      if (job.status === 'expired') return storageError(400, 'ExpiredToken');
      if (job.status !== 'created') return storageError(409, 'AlreadyUploaded');
      job.ids = parseIdFile(text);
      job.status = 'in_progress';
      job.readyAtMs = now() + processingMs;
      if ((faults.complianceJobsFail ?? 0) > 0) {
        faults.complianceJobsFail! -= 1;
        job.fails = true;
      }
      return { status: 200, body: '', contentType: 'text/plain' };
    },

    /** `GET <download_url>`: the result file once the job is complete. */
    download(id: string, signature: string | null): ComplianceResponse {
      const job = signed(id, signature);
      if (!job) return storageError(403, 'AccessDenied');
      refresh(job);
      if (job.status !== 'complete') return storageError(404, 'NoSuchKey');
      const lines: string[] = [];
      const seen = new Set<string>();
      for (const postId of job.ids) {
        if (seen.has(postId) || job.json.type !== 'tweets') continue;
        seen.add(postId);
        const reason = decideCompliance(opts.seed, postId, fraction);
        if (!reason) continue;
        let redactedAt = firstDecided.get(postId);
        if (!redactedAt) {
          redactedAt = new Date(now()).toISOString();
          firstDecided.set(postId, redactedAt);
        }
        const event: ComplianceEvent = {
          id: postId,
          action: 'delete',
          created_at: opts.createdAtOf?.(postId) ?? snowflakeTime(postId),
          redacted_at: redactedAt,
          reason,
        };
        if (!inLedger.has(`${id}:${postId}`)) {
          inLedger.add(`${id}:${postId}`);
          ledger.push({ jobId: id, ...event });
        }
        lines.push(JSON.stringify(event));
      }
      return {
        status: 200,
        body: lines.length > 0 ? lines.join('\n') + '\n' : '',
        contentType: 'application/json',
      };
    },

    /** Every decision handed out, per job and id, in order. */
    ledger: (): ComplianceDecision[] => ledger.map((d) => ({ ...d })),
    /** The ids this stand-in would report for `ids` (without recording anything). */
    decide: (ids: readonly string[]): Map<string, string> => {
      const out = new Map<string, string>();
      for (const id of ids) {
        const reason = decideCompliance(opts.seed, id, fraction);
        if (reason) out.set(id, reason);
      }
      return out;
    },
    setFaults: (f: ComplianceFaults): ComplianceFaults => {
      faults = { ...faults, ...f };
      return { ...faults };
    },
    faults: (): ComplianceFaults => ({ ...faults }),
    jobCount: () => jobs.size,
    reset: () => {
      ledger.length = 0;
      inLedger.clear();
    },
  };
}

export type ComplianceJobs = ReturnType<typeof createComplianceJobs>;
