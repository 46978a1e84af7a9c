/** The dead-letter replay activity over in-memory doubles of its ports (DeadLetterStore, LoadSink). Offline. */
import { ApplicationFailure } from '@temporalio/common';
import {
  INVALID_REPLAY_INPUT,
  REPLAY_STAGING_OWNER,
  createReplayActivities,
  parseAttributes,
  replayRunId,
  revalidate,
  type ReplayPageInput,
} from '../../../src/activities/replay';
import type {
  DeadLetterRecord,
  DeadLetterStore,
  ReplayJournalRow,
} from '../../../src/adapters/bigquery/dead-letters';
import type { LoadSink } from '../../../src/adapters/bigquery/writer';
import { POSTS_TABLE, type Column, type LoadRunRow, type Row } from '../../../src/domain/bigquery-schema';
import { createLogger } from '../../../src/observability/logger';
import { makePost } from '../../support/posts';

const logger = createLogger({ level: 'silent', format: 'json' });
const attrs = (id: string, extra: Record<string, string> = {}) =>
  JSON.stringify({ post_id: id, malformed: 'false', rule_tags: 'tesla', ...extra });

function dl(key: string, payload: unknown, overrides: Partial<DeadLetterRecord> = {}): DeadLetterRecord {
  const id = (payload as { id?: unknown })?.id;
  return {
    replayKey: key,
    messageId: `msg-${key}`,
    postId: typeof id === 'string' ? id : null,
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    attributes: attrs(typeof id === 'string' ? id : ''),
    errorStage: 'validate',
    errorMessage: 'old reason',
    publishTime: '2026-11-25T12:00:05.000Z',
    firstSeen: '2026-11-25T12:01:00.000Z',
    loadRunId: 'lr_old',
    ...overrides,
  };
}

/** posts as a map id → row, written insert-if-absent like the real sink; the journal keyed like the table. */
function fakes(deadLetters: DeadLetterRecord[], opts: { reject?: string[]; columns?: Column[] } = {}) {
  const posts = new Map<string, Row>();
  const journal = new Map<string, ReplayJournalRow>();
  const runs = new Map<string, LoadRunRow>();
  const calls: string[] = [];
  let columns = opts.columns ?? POSTS_TABLE.columns;
  const sink: LoadSink = {
    ensureTables: async () => ({}) as never,
    postsColumns: async () => columns,
    addPostsColumns: async (cols) => {
      calls.push('addPostsColumns');
      const added = cols.filter((c) => !columns.some((x) => x.name === c.name)).map((c) => c.name);
      columns = cols;
      return added;
    },
    insertPosts: async (runId, rows, _cols, owner) => {
      calls.push(`insertPosts ${runId} ${owner}`);
      const rejected = rows
        .filter((r) => opts.reject?.includes(String(r.id)))
        .map((row) => ({ row, reason: 'invalid: refused' }));
      let inserted = 0;
      for (const r of rows) {
        if (opts.reject?.includes(String(r.id)) || posts.has(String(r.id))) continue;
        posts.set(String(r.id), r);
        inserted++;
      }
      return { inserted, rejected };
    },
    claimLane: async () => undefined,
    insertDeadLetters: async () => {
      throw new Error('a replay never writes dead letters');
    },
    recordLoadRun: async (row) => {
      calls.push('recordLoadRun');
      if (!runs.has(row.run_id)) runs.set(row.run_id, row);
    },
  };
  const store: DeadLetterStore = {
    readPage: async (q) =>
      deadLetters
        .filter((d) => d.replayKey > (q.after ?? ''))
        .filter((d) => q.stage === undefined || d.errorStage === q.stage)
        .filter(
          (d) =>
            ![...journal.values()].some(
              (j) =>
                j.payload_hash === d.replayKey &&
                j.replay_id !== q.replayId &&
                (j.outcome === 'replayed' || j.outcome === 'already_loaded'),
            ),
        )
        .sort((a, b) => (a.replayKey < b.replayKey ? -1 : 1))
        .slice(0, q.limit),
    loadedPosts: async (ids) => {
      const m = new Map<string, { loadRunId: string | null; messageId: string | null }>();
      for (const id of ids) {
        const r = posts.get(id);
        if (r) m.set(id, { loadRunId: r.load_run_id as string, messageId: r.message_id as string });
      }
      return m;
    },
    journal: async (rows, jobBase) => {
      calls.push(`journal ${jobBase}`);
      for (const r of rows) {
        const k = `${r.payload_hash}|${r.replay_id}`;
        if (!journal.has(k)) journal.set(k, r);
      }
    },
  };
  const activities = createReplayActivities({
    store,
    sink,
    logger,
    clock: () => new Date('2026-12-01T10:00:00.000Z'),
  });
  return { activities, posts, journal, runs, calls };
}

const input = (overrides: Partial<ReplayPageInput> = {}): ReplayPageInput => ({
  replayId: 'replay-1',
  page: 0,
  after: null,
  dryRun: false,
  batchSize: 100,
  startedAt: '2026-12-01T09:59:00.000Z',
  ...overrides,
});

describe('revalidate (the loader decisions, taken again)', () => {
  test('a post the current validator accepts passes, with its attributes', () => {
    const v = revalidate({ payload: JSON.stringify(makePost('1')), attributes: attrs('1') });
    expect(v).toMatchObject({
      ok: true,
      post: { id: '1' },
      attributes: { post_id: '1', rule_tags: 'tesla' },
    });
  });
  test('a message the stream marked malformed stays malformed, with its reason', () => {
    expect(
      revalidate({
        payload: '{"reason":"unbalanced JSON"}',
        attributes: JSON.stringify({ malformed: 'true' }),
      }),
    ).toEqual({ ok: false, stage: 'malformed', reason: 'unbalanced JSON' });
  });
  test('payloads stored as base64 are decoded first; invalid UTF-8 or JSON fails as decode', () => {
    const b64 = `base64:${Buffer.from(JSON.stringify(makePost('2'))).toString('base64')}`;
    expect(revalidate({ payload: b64, attributes: null })).toMatchObject({ ok: true, post: { id: '2' } });
    const bad = `base64:${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64')}`;
    expect(revalidate({ payload: bad, attributes: null })).toMatchObject({ ok: false, stage: 'decode' });
    expect(revalidate({ payload: '{not json', attributes: null })).toMatchObject({
      ok: false,
      stage: 'decode',
    });
    expect(revalidate({ payload: null, attributes: null })).toMatchObject({ ok: false, stage: 'decode' });
  });
  test('a post the validator still refuses fails at its stage, with the reason', () => {
    expect(revalidate({ payload: JSON.stringify({ ...makePost('3'), lang: 42 }), attributes: null })).toEqual(
      {
        ok: false,
        stage: 'validate',
        reason: 'lang: expected a string or null',
      },
    );
    expect(
      revalidate({ payload: JSON.stringify({ ...makePost('3'), schema_version: 99 }), attributes: null }),
    ).toMatchObject({ ok: false, stage: 'schema_version' });
  });
  test('attributes that are not a JSON object of strings count as none', () => {
    expect(parseAttributes('not json')).toEqual({});
    expect(parseAttributes('[1]')).toEqual({});
    expect(parseAttributes('{"a":"x","b":1}')).toEqual({ a: 'x' });
  });
});

describe('replayDeadLetterPage', () => {
  test('loads what now passes once, journals every dead letter with its outcome, and counts by stage', async () => {
    const f = fakes([
      dl('a', makePost('1'), { errorStage: 'schema_version' }),
      dl('b', { ...makePost('2'), lang: 42 }),
      dl('c', makePost('3'), { errorStage: 'bigquery_insert' }),
    ]);
    f.posts.set('3', { id: '3', load_run_id: 'lr_pipeline', message_id: 'other' });
    const runId = replayRunId('replay-1', 0);
    const r = await f.activities.replayDeadLetterPage(input());
    expect(r).toMatchObject({
      examined: 3,
      replayed: 1,
      alreadyLoaded: 1,
      stillFailing: 1,
      nextCursor: null,
      runId,
      byStage: {
        schema_version: { examined: 1, replayed: 1, alreadyLoaded: 0, stillFailing: 0 },
        validate: { examined: 1, replayed: 0, alreadyLoaded: 0, stillFailing: 1 },
        bigquery_insert: { examined: 1, replayed: 0, alreadyLoaded: 1, stillFailing: 0 },
      },
    });
    expect(r.examples[0]).toMatchObject({ replayKey: 'b', outcome: 'still_failing', errorStage: 'validate' });
    expect(f.posts.get('1')).toMatchObject({
      id: '1',
      message_id: 'msg-a',
      load_run_id: runId,
      publish_time: '2026-11-25T12:00:05.000Z',
      ingested_at: '2026-12-01T10:00:00.000Z',
      attributes: attrs('1'),
    });
    expect(
      [...f.journal.values()].map((j) => [j.payload_hash, j.outcome, j.error_message, j.load_run_id]),
    ).toEqual([
      ['a', 'replayed', null, runId],
      ['b', 'still_failing', 'lang: expected a string or null', null],
      ['c', 'already_loaded', null, 'lr_pipeline'],
    ]);
    expect(f.calls).toEqual([
      `insertPosts ${runId} ${REPLAY_STAGING_OWNER}`,
      'recordLoadRun',
      `journal replay_${runId}`,
    ]);
    expect(f.runs.get(runId)).toMatchObject({ workflow_id: 'replay-1', rows_loaded: 1, message_count: 3 });
  });

  test('a retried page inserts nothing more and journals the same outcomes', async () => {
    const f = fakes([dl('a', makePost('1')), dl('b', { ...makePost('2'), lang: 42 })]);
    const first = await f.activities.replayDeadLetterPage(input());
    const again = await f.activities.replayDeadLetterPage(input());
    expect(again).toEqual(first);
    expect(f.posts.size).toBe(1);
    expect(f.journal.size).toBe(2);
  });

  test('a later replay skips what an earlier one loaded and adds nothing', async () => {
    const f = fakes([dl('a', makePost('1')), dl('b', { ...makePost('2'), lang: 42 })]);
    await f.activities.replayDeadLetterPage(input());
    const second = await f.activities.replayDeadLetterPage(input({ replayId: 'replay-2' }));
    expect(second).toMatchObject({ examined: 1, replayed: 0, alreadyLoaded: 0, stillFailing: 1 });
    expect([...f.posts.keys()]).toEqual(['1']);
  });

  test('two dead letters of one post: the earliest published is replayed, the other is already loaded', async () => {
    const f = fakes([
      dl('a', makePost('1'), { publishTime: '2026-11-25T12:00:09.000Z' }),
      dl('b', { ...makePost('1'), text: 'edited' }, { publishTime: '2026-11-25T12:00:01.000Z' }),
    ]);
    const r = await f.activities.replayDeadLetterPage(input());
    expect(r).toMatchObject({ replayed: 1, alreadyLoaded: 1 });
    expect(f.posts.get('1')).toMatchObject({ message_id: 'msg-b', text: 'edited' });
    expect(f.journal.get('b|replay-1')?.outcome).toBe('replayed');
    expect(f.journal.get('a|replay-1')?.outcome).toBe('already_loaded');
  });

  test('a row BigQuery refuses again stays failing as bigquery_insert', async () => {
    const f = fakes([dl('a', makePost('1'), { errorStage: 'bigquery_insert' })], { reject: ['1'] });
    const r = await f.activities.replayDeadLetterPage(input());
    expect(r).toMatchObject({ replayed: 0, stillFailing: 1 });
    expect(f.journal.get('a|replay-1')).toMatchObject({
      outcome: 'still_failing',
      error_stage: 'bigquery_insert',
      error_message: 'invalid: refused',
    });
  });

  test('new fields become columns as in the loader; a value that does not fit its column fails as schema_conflict', async () => {
    const existing: Column = { name: 'views', type: 'FLOAT64', mode: 'NULLABLE' };
    const f = fakes(
      [
        dl('a', { ...makePost('1'), mood: 'happy' }),
        dl('b', { ...makePost('2'), views: 'many' }, { errorStage: 'schema_conflict' }),
      ],
      { columns: [...POSTS_TABLE.columns, existing] },
    );
    const r = await f.activities.replayDeadLetterPage(input());
    expect(r).toMatchObject({ replayed: 1, stillFailing: 1, columnsAdded: ['mood'] });
    expect(f.posts.get('1')).toMatchObject({ mood: 'happy' });
    expect(f.journal.get('b|replay-1')).toMatchObject({ error_stage: 'schema_conflict' });
  });

  test('a dry run decides the same and writes nothing', async () => {
    const f = fakes([
      dl('a', makePost('1')),
      dl('b', { ...makePost('2'), lang: 42 }),
      dl('c', makePost('3')),
      dl('d', { ...makePost('4'), mood: 'new' }),
    ]);
    f.posts.set('3', { id: '3', load_run_id: 'lr_pipeline', message_id: 'x' });
    const r = await f.activities.replayDeadLetterPage(input({ dryRun: true }));
    expect(r).toMatchObject({
      examined: 4,
      replayed: 2,
      alreadyLoaded: 1,
      stillFailing: 1,
      runId: null,
      columnsAdded: ['mood'],
    });
    expect(f.calls).toEqual([]);
    expect([...f.posts.keys()]).toEqual(['3']);
    expect(f.journal.size).toBe(0);
  });

  test('a full page hands on its last key; the next page starts after it', async () => {
    const f = fakes([dl('a', makePost('1')), dl('b', makePost('2')), dl('c', makePost('3'))]);
    const p0 = await f.activities.replayDeadLetterPage(input({ batchSize: 2 }));
    expect(p0).toMatchObject({ examined: 2, nextCursor: 'b' });
    const p1 = await f.activities.replayDeadLetterPage(input({ batchSize: 2, page: 1, after: 'b' }));
    expect(p1).toMatchObject({ examined: 1, nextCursor: null, runId: replayRunId('replay-1', 1) });
    expect(f.posts.get('3')?.load_run_id).toBe(replayRunId('replay-1', 1));
  });

  test('a bad window, stage or page size fails without retries, naming it', async () => {
    const f = fakes([]);
    const err = await f.activities
      .replayDeadLetterPage(input({ since: '2026-13-01', stage: 'nope', batchSize: 0 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: INVALID_REPLAY_INPUT, nonRetryable: true });
    expect((err as Error).message).toMatch(
      /since: not a real date: 2026-13-01.*stage: expected one of .*batchSize/,
    );
  });

  test('run ids differ per page and per replay, and never change for the same page', () => {
    expect(replayRunId('r', 0)).toBe(replayRunId('r', 0));
    expect(new Set([replayRunId('r', 0), replayRunId('r', 1), replayRunId('s', 0)]).size).toBe(3);
    expect(replayRunId('r', 0)).toMatch(/^dr_[0-9a-f]{24}$/);
  });
});
