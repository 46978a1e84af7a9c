/** The replay workflow's report arithmetic (pure, sandbox-safe), offline. */
import type { ReplayExample, ReplayPageResult } from '../../../src/activities/replay';
import {
  REPLAY_REPORT_EXAMPLES,
  addPage,
  emptyReplayReport,
  type DeadLetterReplayReport,
} from '../../../src/workflows/replay-dead-letters';

const report = (): DeadLetterReplayReport =>
  emptyReplayReport({
    replayId: 'r',
    dryRun: false,
    since: null,
    until: null,
    stage: null,
    startedAt: '2026-12-01T00:00:00.000Z',
  });
const example = (key: string, outcome: ReplayExample['outcome']): ReplayExample => ({
  replayKey: key,
  messageId: key,
  postId: null,
  stage: 'validate',
  outcome,
});
const page = (p: Partial<ReplayPageResult>): ReplayPageResult => ({
  examined: 0,
  replayed: 0,
  alreadyLoaded: 0,
  stillFailing: 0,
  byStage: {},
  nextCursor: null,
  runId: null,
  columnsAdded: [],
  examples: [],
  ...p,
});

test('pages add up, overall and per stage; columns are listed once', () => {
  const one = addPage(
    report(),
    page({
      examined: 3,
      replayed: 2,
      stillFailing: 1,
      byStage: {
        validate: { examined: 2, replayed: 1, alreadyLoaded: 0, stillFailing: 1 },
        schema_version: { examined: 1, replayed: 1, alreadyLoaded: 0, stillFailing: 0 },
      },
      columnsAdded: ['mood'],
    }),
  );
  const two = addPage(
    one,
    page({
      examined: 2,
      alreadyLoaded: 2,
      byStage: { validate: { examined: 2, replayed: 0, alreadyLoaded: 2, stillFailing: 0 } },
      columnsAdded: ['mood', 'views'],
    }),
  );
  expect(two).toMatchObject({
    pages: 2,
    examined: 5,
    replayed: 2,
    alreadyLoaded: 2,
    stillFailing: 1,
    byStage: {
      validate: { examined: 4, replayed: 1, alreadyLoaded: 2, stillFailing: 1 },
      schema_version: { examined: 1, replayed: 1, alreadyLoaded: 0, stillFailing: 0 },
    },
    columnsAdded: ['mood', 'views'],
  });
  expect(one.examined).toBe(3); // the earlier report is not changed
});

test('the examples stay bounded, still-failing ones first', () => {
  let r = report();
  for (let i = 0; i < 10; i++) {
    r = addPage(
      r,
      page({
        examples: [
          example(`ok${i}`, 'replayed'),
          example(`ok${i}b`, 'replayed'),
          example(`bad${i}`, 'still_failing'),
        ],
      }),
    );
  }
  expect(r.examples).toHaveLength(REPLAY_REPORT_EXAMPLES);
  expect(r.examples.slice(0, 10).every((e) => e.outcome === 'still_failing')).toBe(true);
});
