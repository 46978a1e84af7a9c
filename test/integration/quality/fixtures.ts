/**
 * Fixtures of the data-quality integration tests: a clean, steady stream of posts (one a minute for
 * 80 minutes before `asOf`) with two dead letters, the stream counters that match it, and helpers to
 * write a scenario into its own pair of tables in the BigQuery emulator.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { ensureTable, type BigQueryTarget } from '../../../src/adapters/bigquery/provision';
import { DEAD_LETTER_TABLE, POSTS_TABLE, type Column } from '../../../src/domain/bigquery-schema';
import type { MinuteCount } from '../../../src/domain/pipeline-status';

const MINUTE = 60_000;
export const iso = (ms: number) => new Date(ms).toISOString();

export interface PostFixture {
  id: string | null;
  text: string | null;
  created_at: string;
  author_id: string | null;
  lang: string | null;
  like_count: number | null;
  received_at: string;
  ingested_at: string;
}

export interface DeadLetterFixture {
  message_id: string;
  post_id: string | null;
  payload: string;
  error_stage: string;
  error_message: string;
  publish_time: string;
  first_seen: string;
  /** The received time the stream counted it under. */
  received_at: string;
}

export interface Fixture {
  posts: PostFixture[];
  deadLetters: DeadLetterFixture[];
}

/** `asOf` at a whole second, 20 s past a minute, so minute windows are unambiguous. */
export function fixtureClock(): string {
  return iso(Math.floor(Date.now() / MINUTE) * MINUTE + 20_000);
}

export function post(asOf: string, minutesAgo: number, id: string, overrides: Partial<PostFixture> = {}) {
  const received = Math.floor(Date.parse(asOf) / MINUTE) * MINUTE - minutesAgo * MINUTE + 10_000;
  return {
    id,
    text: `post ${id} #tesla`,
    created_at: iso(received - 2_000),
    author_id: '42',
    lang: 'en',
    like_count: 3,
    received_at: iso(received),
    ingested_at: iso(received + 20_000),
    ...overrides,
  } satisfies PostFixture;
}

export function deadLetter(
  asOf: string,
  minutesAgo: number,
  messageId: string,
  json: boolean,
  stage = 'malformed',
): DeadLetterFixture {
  const received = Math.floor(Date.parse(asOf) / MINUTE) * MINUTE - minutesAgo * MINUTE + 15_000;
  return {
    message_id: messageId,
    post_id: null,
    payload: json
      ? JSON.stringify({ kind: 'malformed', reason: 'bad line', raw: '{"data":', received_at: iso(received) })
      : 'not json at all',
    error_stage: json ? stage : 'decode',
    error_message: 'fixture',
    publish_time: iso(received + 500),
    first_seen: iso(received + 20_000),
    received_at: iso(received),
  };
}

/** One post a minute for 80 minutes, plus a malformed (JSON) and a non-JSON dead letter. */
export function cleanFixture(asOf: string): Fixture {
  const posts: PostFixture[] = [];
  for (let m = 1; m <= 80; m++) posts.push(post(asOf, m, String(1_700_000_000_000 + m)));
  return { posts, deadLetters: [deadLetter(asOf, 8, 'm-json', true), deadLetter(asOf, 9, 'm-text', false)] };
}

/** What the stream's counters say about a fixture: every message under its received minute. */
export function countersOf(f: Fixture): MinuteCount[] {
  const by = new Map<string, number>();
  const add = (receivedAt: string) => {
    const minute = iso(Math.floor(Date.parse(receivedAt) / MINUTE) * MINUTE);
    by.set(minute, (by.get(minute) ?? 0) + 1);
  };
  f.posts.forEach((p) => add(p.received_at));
  f.deadLetters.forEach((d) => add(d.received_at));
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([minute, published]) => ({ minute, published }));
}

export function shift(f: Fixture, ms: number): Fixture {
  const s = (t: string) => iso(Date.parse(t) + ms);
  return {
    posts: f.posts.map((p) => ({
      ...p,
      created_at: s(p.created_at),
      received_at: s(p.received_at),
      ingested_at: s(p.ingested_at),
    })),
    deadLetters: f.deadLetters.map((d) => ({
      ...d,
      payload: d.payload.replace(d.received_at, s(d.received_at)),
      publish_time: s(d.publish_time),
      first_seen: s(d.first_seen),
      received_at: s(d.received_at),
    })),
  };
}

/** Creates `posts_<name>` and `dl_<name>` with the schema helpers and inserts the fixture. */
export async function writeFixture(
  bq: BigQuery,
  gcp: BigQueryTarget,
  name: string,
  f: Fixture,
  postsColumns: Column[] = POSTS_TABLE.columns,
): Promise<{ posts: string; deadLetter: string }> {
  const tables = { posts: `posts_${name}`, deadLetter: `dl_${name}` };
  await ensureTable(bq, gcp, tables.posts, POSTS_TABLE, postsColumns);
  await ensureTable(bq, gcp, tables.deadLetter, DEAD_LETTER_TABLE);
  const ds = bq.dataset(gcp.dataset);
  if (f.posts.length > 0) await ds.table(tables.posts).insert(f.posts);
  if (f.deadLetters.length > 0) {
    await ds.table(tables.deadLetter).insert(f.deadLetters.map(({ received_at: _r, ...row }) => row));
  }
  return tables;
}
