import { createStreamCounters } from '../../../../src/adapters/temporal/published-counts';
import type { PipelineStatus } from '../../../../src/domain/pipeline-status';

test('stream counters: filtered to the window, one status read per cache period, undefined when unavailable', async () => {
  let reads = 0;
  const status = {
    progress: { connected: true },
    publishedByMinute: [
      { minute: '2026-11-25T18:00:00.000Z', published: 3 },
      { minute: '2026-11-25T18:01:00.000Z', published: 4 },
      { minute: '2026-11-25T18:02:00.000Z', published: 5 },
    ],
  } as PipelineStatus;
  const c = createStreamCounters(async () => {
    reads++;
    return status;
  });
  await expect(c.publishedCounts('2026-11-25T18:01:00.000Z', '2026-11-25T18:02:00.000Z')).resolves.toEqual([
    { minute: '2026-11-25T18:01:00.000Z', published: 4 },
  ]);
  await expect(c.streamConnected()).resolves.toBe(true);
  expect(reads).toBe(1);

  const down = createStreamCounters(async () => {
    throw new Error('workflow not found');
  });
  await expect(down.publishedCounts('a', 'b')).resolves.toBeUndefined();
  await expect(down.streamConnected()).resolves.toBeUndefined();
});

test('stream counters: "connected since" a window start is true only for a stream up before it', async () => {
  const at = (progress: Partial<PipelineStatus['progress']>) =>
    createStreamCounters(async () => ({ progress, publishedByMinute: [] }) as unknown as PipelineStatus);
  const windowStart = '2026-12-01T20:17:00.000Z';
  const upSince = (since: string) => at({ connected: true, connectedSince: since });
  await expect(upSince('2026-12-01T20:00:00.000Z').streamConnected(windowStart)).resolves.toBe(true);
  // A pipeline started after the window began (the demo's first minutes) is not "connected with 0 posts".
  await expect(upSince('2026-12-01T20:32:00.000Z').streamConnected(windowStart)).resolves.toBe(false);
  await expect(at({ connected: false }).streamConnected(windowStart)).resolves.toBe(false);
  // A supervisor that does not report since when (an older worker) cannot be judged.
  await expect(at({ connected: true }).streamConnected(windowStart)).resolves.toBeUndefined();
});
