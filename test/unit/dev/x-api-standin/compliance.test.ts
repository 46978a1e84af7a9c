/**
 * The stand-in's batch compliance jobs, through the pipeline's own client over real HTTP (loopback,
 * port 0): create → upload → in_progress → complete → result file; the decisions are deterministic,
 * only for the stand-in's own posts, and in the ledger; signed URLs need their signature, the API
 * its bearer token. Plus the client's lenient parsing of result files.
 */
import { decideCompliance, isStandinPostId } from '../../../../dev/x-api-standin/compliance';
import { snowflake } from '../../../../dev/x-api-standin/corpus';
import { startXStandin, type XStandin } from '../../../../dev/x-api-standin/server';
import {
  XComplianceClient,
  parseComplianceResults,
  redactUrl,
} from '../../../../src/adapters/x/compliance-client';
import { XAuthError } from '../../../../src/adapters/x/errors';
import { eventually } from '../../../support/eventually';

const SEED = 5;
let standin: XStandin;
let client: XComplianceClient;

beforeEach(async () => {
  standin = await startXStandin({
    rate: 0,
    seed: SEED,
    token: 'secret',
    complianceFraction: 0.3,
    complianceProcessingMs: 50,
  });
  client = new XComplianceClient({ baseUrl: standin.url, bearerToken: 'secret' });
});
afterEach(() => standin.close());

const statusBecomes = (id: string, status: string) =>
  eventually(
    async () => (await client.getJob(id)).status,
    (s) => s === status,
    { timeoutMs: 5000, intervalMs: 10 },
  );

const ownIds = (n: number) => Array.from({ length: n }, (_, i) => snowflake(SEED, 1000 + i));

test('a job goes created → in_progress → complete and its result lists the decided ids', async () => {
  const ids = [...ownIds(200), '12345', snowflake(SEED + 1, 7)];
  const job = await client.createJob('nightly');
  expect(job).toMatchObject({ status: 'created', name: 'nightly' });
  expect(job.uploadUrl).toContain('signature=');
  await client.upload(job, ids);
  expect((await client.getJob(job.id)).status).toBe('in_progress');
  await statusBecomes(job.id, 'complete');

  const { results, unreadable } = await client.download(job);
  expect(unreadable).toBe(0);
  const decided = standin.complianceDecide(ids);
  expect(results.map((r) => r.id).sort()).toEqual([...decided.keys()].sort());
  // About 30 % of its own posts, none of the others.
  expect(decided.size).toBeGreaterThan(30);
  expect(decided.size).toBeLessThan(90);
  expect(decided.has('12345')).toBe(false);
  for (const r of results) {
    expect(r).toMatchObject({ action: 'delete', reason: decided.get(r.id) });
    expect(Date.parse(r.redactedAt!)).toBeGreaterThan(0);
    expect(Date.parse(r.createdAt!)).toBeGreaterThan(0);
  }
  expect(standin.complianceLedger()).toEqual(
    results.map((r) => ({
      jobId: job.id,
      id: r.id,
      action: 'delete',
      reason: r.reason,
      created_at: r.createdAt,
      redacted_at: r.redactedAt,
    })),
  );

  // The same ids in a second job get the same answer (same redacted_at too).
  const again = await client.createJob();
  await client.upload(again, ids);
  await statusBecomes(again.id, 'complete');
  expect((await client.download(again)).results).toEqual(results);
  expect(standin.complianceLedger()).toHaveLength(results.length * 2);
});

test('decisions are deterministic per seed and only for the stand-in’s own post ids', () => {
  const ids = ownIds(1000);
  expect(ids.every((id) => isStandinPostId(SEED, id))).toBe(true);
  expect(isStandinPostId(SEED, snowflake(SEED, 3, 1))).toBe(false); // a rule/user id
  expect(isStandinPostId(SEED, snowflake(SEED + 1, 3))).toBe(false);
  const first = ids.map((id) => decideCompliance(SEED, id, 0.1));
  expect(ids.map((id) => decideCompliance(SEED, id, 0.1))).toEqual(first);
  const share = first.filter(Boolean).length / ids.length;
  expect(share).toBeGreaterThan(0.06);
  expect(share).toBeLessThan(0.14);
  expect(ids.filter((id) => decideCompliance(SEED, id, 0)).length).toBe(0);
});

test('storage URLs need their signature; the API needs the token; a failing job ends failed', async () => {
  const job = await client.createJob();
  const forged = { id: job.id, uploadUrl: job.uploadUrl.replace(/signature=\w+/, 'signature=nope') };
  await expect(client.upload(forged, ['1'])).rejects.toThrow(/HTTP 403/);
  await expect(client.download(job)).rejects.toThrow(/HTTP 404/); // not complete yet
  const bad = new XComplianceClient({ baseUrl: standin.url, bearerToken: 'wrong' });
  await expect(bad.createJob()).rejects.toBeInstanceOf(XAuthError);

  standin.setFaults({ complianceJobsFail: 1 });
  await client.upload(job, ownIds(3));
  await statusBecomes(job.id, 'failed');
  await expect(client.upload(job, ownIds(3))).rejects.toThrow(/HTTP 409/);
});

test('the jobs list filters by type and status, newest first', async () => {
  const a = await client.createJob('a');
  const b = await client.createJob('b');
  await client.upload(b, ownIds(2));
  const res = await fetch(`${standin.url}/2/compliance/jobs?type=tweets&status=created`, {
    headers: { authorization: 'Bearer secret' },
  });
  const body = (await res.json()) as { data: { id: string }[] };
  expect(body.data.map((j) => j.id)).toEqual([a.id]);
  const all = (await (
    await fetch(`${standin.url}/2/compliance/jobs?type=tweets`, {
      headers: { authorization: 'Bearer secret' },
    })
  ).json()) as { data: { id: string }[] };
  expect(all.data.map((j) => j.id)).toEqual([b.id, a.id]);
});

test('result files are parsed leniently and signed URLs are not shown in messages', () => {
  const text = [
    '{"id":"1","action":"delete","created_at":"2024-01-10T12:00:00.000Z","redacted_at":"2024-01-12T08:30:00.000Z","reason":"deleted"}',
    '',
    '{"id":2,"action":"delete","reason":"scrub_geo","created_at":"not a date"}\r',
    'not json',
    '{"action":"delete"}',
  ].join('\n');
  expect(parseComplianceResults(text)).toEqual({
    results: [
      {
        id: '1',
        action: 'delete',
        reason: 'deleted',
        createdAt: '2024-01-10T12:00:00.000Z',
        redactedAt: '2024-01-12T08:30:00.000Z',
      },
      { id: '2', action: 'delete', reason: 'scrub_geo' },
    ],
    unreadable: 2,
  });
  expect(redactUrl('https://storage.googleapis.com/b/o?X-Goog-Signature=abc')).toBe(
    'https://storage.googleapis.com/b/o',
  );
});
