/** `npm run dead-letters:replay`: its flags, offline. */
import { parseReplayArgs, replayWorkflowId } from '../../../src/workers/replay-dead-letters';

const now = new Date('2026-12-03T10:20:30.456Z');

test('the README command becomes a dry-run replay of one stage since a day, under a timestamped id', () => {
  expect(
    parseReplayArgs(['--since', '2026-12-01', '--stage', 'validate', '--dry-run'], 'default', now),
  ).toEqual({
    input: { since: '2026-12-01', stage: 'validate', dryRun: true },
    replayId: 'x-ingest-default-dead-letter-replay-dry-run-20261203T102030456Z',
  });
});

test('no flags: every dead letter, for real, default page size', () => {
  expect(parseReplayArgs([], 'tesla', now)).toEqual({
    input: { dryRun: false },
    replayId: replayWorkflowId('tesla', now, false),
  });
  expect(replayWorkflowId('tesla', now, false)).toBe('x-ingest-tesla-dead-letter-replay-20261203T102030456Z');
});

test('until, batch size and an explicit replay id are passed on', () => {
  expect(
    parseReplayArgs(
      ['--until', '2026-12-02T00:00:00Z', '--batch-size', '50', '--replay-id', 'fix-42'],
      'd',
      now,
    ),
  ).toEqual({ input: { until: '2026-12-02T00:00:00Z', dryRun: false, batchSize: 50 }, replayId: 'fix-42' });
});

test('bad flags are refused with every problem named', () => {
  expect(() =>
    parseReplayArgs(['--since', '2026-02-30', '--stage', 'oops', '--batch-size', '0'], 'd', now),
  ).toThrow(
    /--since: not a real date: 2026-02-30\n--stage: expected one of .*, got oops\n--batch-size: expected an integer from 1 to 10000, got 0/,
  );
  expect(() => parseReplayArgs(['--replay-id', 'a b'], 'd', now)).toThrow(/--replay-id/);
  expect(() => parseReplayArgs(['--sinse', '2026-12-01'], 'd', now)).toThrow(/sinse/);
  expect(() => parseReplayArgs(['2026-12-01'], 'd', now)).toThrow();
});
