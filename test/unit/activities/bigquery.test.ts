/** The load activity over in-memory doubles of its ports (BatchSubscriber, LoadSink). Offline. */
import { batchIdOf, createLoadActivities, runIdOf, type RunIdentity } from '../../../src/activities/bigquery';
import type { LoadSink } from '../../../src/adapters/bigquery/writer';
import type { BatchSubscriber, PulledMessage } from '../../../src/adapters/pubsub/subscriber';
import {
  POSTS_TABLE,
  type DeadLetterRow,
  type LoadRunRow,
  type Row,
} from '../../../src/domain/bigquery-schema';
import { createLogger } from '../../../src/observability/logger';
import { makePost } from '../../support/posts';

const logger = createLogger({ level: 'silent', format: 'json' });
let seq = 0;
const msg = (data: unknown, attributes: Record<string, string> = {}): PulledMessage => {
  seq++;
  return {
    ackId: `ack-${seq}`,
    messageId: `m-${seq}`,
    publishTime: new Date(Date.UTC(2026, 10, 25, 12, 0, seq)).toISOString(),
    data: Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)),
    attributes,
    deliveryAttempt: 1,
  };
};

function fakes(messages: PulledMessage[], failOn?: 'posts' | 'deadLetters' | 'loadRun') {
  const log: string[] = [];
  const acked: string[] = [];
  const deadlines: { ackIds: string[]; seconds: number }[] = [];
  const posts = new Map<string, Row>();
  const deadLetters: DeadLetterRow[] = [];
  const runs: LoadRunRow[] = [];
  let leaseExtended!: () => void;
  const extended = new Promise<void>((r) => (leaseExtended = r));
  let pulled = false;
  const subscriber: BatchSubscriber = {
    async pull() {
      if (pulled) return [];
      pulled = true;
      return messages;
    },
    async modifyAckDeadline(ackIds, seconds) {
      deadlines.push({ ackIds, seconds });
      if (seconds > 0) leaseExtended();
    },
    async acknowledge(ackIds) {
      log.push('ack');
      acked.push(...ackIds);
    },
    async close() {},
  };
  const fail = (what: typeof failOn) => {
    if (failOn === what) throw new Error(`${what} write failed`);
  };
  const sink: LoadSink = {
    ensureTables: async () => ({}) as never,
    postsColumns: async () => POSTS_TABLE.columns,
    addPostsColumns: async () => [],
    async claimLane() {
      log.push('claim');
    },
    async insertPosts(_runId, rows) {
      log.push('posts');
      fail('posts');
      let inserted = 0;
      for (const r of rows) {
        if (!posts.has(String(r.id))) {
          posts.set(String(r.id), r);
          inserted++;
        }
      }
      return { inserted, rejected: [] };
    },
    async insertDeadLetters(_runId, rows) {
      log.push('deadLetters');
      fail('deadLetters');
      deadLetters.push(...rows);
      return rows.length;
    },
    async recordLoadRun(row) {
      log.push('loadRun');
      fail('loadRun');
      runs.push(row);
    },
  };
  return { subscriber, sink, log, acked, deadlines, posts, deadLetters, runs, extended };
}

test('writes posts, dead letters and the load run, and acks only after all of them', async () => {
  const ms = [msg(makePost('1')), msg(makePost('2'))];
  const f = fakes(ms);
  const r = await createLoadActivities({ subscriber: f.subscriber, sink: f.sink, logger }).loadBatch({
    batchSize: 10,
  });
  expect(f.log).toEqual(['posts', 'deadLetters', 'loadRun', 'ack']);
  expect(f.acked).toEqual(ms.map((m) => m.ackId));
  expect(r).toMatchObject({ pulled: 2, valid: 2, rowsLoaded: 2, duplicatesSkipped: 0, deadLetters: 0 });
  expect(f.runs).toEqual([
    expect.objectContaining({ run_id: r.runId, message_count: 2, rows_loaded: 2, outcome: 'loaded' }),
  ]);
});

test.each(['posts', 'deadLetters', 'loadRun'] as const)(
  'nothing is acked when the %s write throws; the batch is handed back (deadline 0)',
  async (failOn) => {
    const ms = [msg(makePost('1')), msg('not json')];
    const f = fakes(ms, failOn);
    await expect(
      createLoadActivities({ subscriber: f.subscriber, sink: f.sink, logger }).loadBatch({ batchSize: 10 }),
    ).rejects.toThrow(`${failOn} write failed`);
    expect(f.acked).toEqual([]);
    expect(f.deadlines).toContainEqual({ ackIds: ms.map((m) => m.ackId), seconds: 0 });
  },
);

test('a crash in beforeAck (after the write) leaves the batch unacknowledged', async () => {
  const f = fakes([msg(makePost('1'))]);
  const acts = createLoadActivities({
    subscriber: f.subscriber,
    sink: f.sink,
    logger,
    beforeAck: async () => {
      throw new Error('crash');
    },
  });
  await expect(acts.loadBatch({ batchSize: 10 })).rejects.toThrow('crash');
  expect(f.posts.size).toBe(1);
  expect(f.acked).toEqual([]);
});

test('a malformed attribute → dead letter at stage malformed with the reason from the payload', async () => {
  const m = msg(
    { kind: 'malformed', reason: 'no data.id', raw: '{}' },
    { malformed: 'true', error: 'attr reason' },
  );
  const f = fakes([m]);
  const r = await createLoadActivities({ subscriber: f.subscriber, sink: f.sink, logger }).loadBatch({
    batchSize: 10,
  });
  expect(f.deadLetters).toEqual([
    expect.objectContaining({
      message_id: m.messageId,
      error_stage: 'malformed',
      error_message: 'no data.id',
      load_run_id: r.runId,
    }),
  ]);
  expect(r).toMatchObject({ valid: 0, deadLetters: 1 });
  expect(f.runs[0]!.outcome).toBe('dead_letters_only');
  expect(f.acked).toEqual([m.ackId]);
});

test('duplicate post ids in one batch → one row (earliest publish) and duplicatesSkipped', async () => {
  const first = msg(makePost('7'));
  const f = fakes([first, msg(makePost('7')), msg(makePost('8'))]);
  const r = await createLoadActivities({ subscriber: f.subscriber, sink: f.sink, logger }).loadBatch({
    batchSize: 10,
  });
  expect([...f.posts.keys()]).toEqual(['7', '8']);
  expect(f.posts.get('7')!.message_id).toBe(first.messageId);
  expect(r).toMatchObject({ pulled: 3, valid: 3, rowsLoaded: 2, duplicatesSkipped: 1 });
});

test('the lease is extended while the batch is written', async () => {
  const ms = [msg(makePost('1'))];
  const f = fakes(ms);
  const slowSink: LoadSink = {
    ...f.sink,
    async insertPosts(runId, rows, columns) {
      await f.extended; // the write outlives one lease interval
      return f.sink.insertPosts(runId, rows, columns);
    },
  };
  await createLoadActivities({ subscriber: f.subscriber, sink: slowSink, logger }).loadBatch({
    batchSize: 10,
    ackDeadlineSeconds: 3,
  });
  expect(f.deadlines[0]).toEqual({ ackIds: [ms[0]!.ackId], seconds: 3 });
  expect(f.acked).toEqual([ms[0]!.ackId]);
});

test('an empty pull writes nothing', async () => {
  const f = fakes([]);
  const r = await createLoadActivities({ subscriber: f.subscriber, sink: f.sink, logger }).loadBatch({
    batchSize: 10,
  });
  expect(r).toMatchObject({ runId: null, pulled: 0 });
  expect(f.log).toEqual([]);
});

test('batchIdOf and runIdOf are deterministic', () => {
  expect(batchIdOf(['b', 'a'])).toBe(batchIdOf(['a', 'b']));
  expect(batchIdOf(['a'])).not.toBe(batchIdOf(['a', 'b']));
  const id: RunIdentity = { workflowId: 'w', workflowRunId: 'r', activityId: '1', attempt: 1 };
  const b = batchIdOf(['a']);
  expect(runIdOf(id, b)).toBe(runIdOf({ ...id }, b));
  expect(runIdOf(id, b)).toMatch(/^lr_[0-9a-f]{24}$/);
  expect(runIdOf({ ...id, attempt: 2 }, b)).not.toBe(runIdOf(id, b));
  expect(runIdOf(id, batchIdOf(['c']))).not.toBe(runIdOf(id, b));
});
