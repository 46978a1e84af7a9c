import {
  decideReconnect,
  initialHistory,
  ReconnectPolicy,
  type Failure,
  type ReconnectDecision,
} from '../../../../src/adapters/x/reconnect-policy';

const T0 = Date.UTC(2025, 0, 1);
const delays = (
  p: ReconnectPolicy,
  failure: Failure,
  n: number,
  connectedForMs?: number,
  now = T0,
): number[] =>
  Array.from({ length: n }, () => {
    const d = p.next(failure, connectedForMs, now);
    if (d.action !== 'retry') throw new Error('expected retry');
    return d.delayMs;
  });

describe('reconnect policy (X rules)', () => {
  it('network errors: +250 ms per attempt, capped at 16 s', () => {
    const p = new ReconnectPolicy();
    expect(delays(p, { kind: 'network' }, 66)).toEqual(
      Array.from({ length: 66 }, (_, i) => Math.min(250 * (i + 1), 16_000)),
    );
  });

  it('HTTP errors: 5 s doubling, capped at 320 s', () => {
    const p = new ReconnectPolicy();
    expect(delays(p, { kind: 'http', status: 503 }, 9)).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 320_000, 320_000,
    ]);
  });

  it('429: 60 s doubling without a cap', () => {
    const p = new ReconnectPolicy();
    expect(delays(p, { kind: 'rate-limit' }, 6)).toEqual([
      60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000,
    ]);
  });

  it('429 honours x-rate-limit-reset when it is later than the back-off', () => {
    const p = new ReconnectPolicy();
    const reset = T0 / 1000 + 600; // 10 minutes from now
    expect(p.next({ kind: 'rate-limit', resetEpochSeconds: reset }, undefined, T0)).toMatchObject({
      delayMs: 600_000,
    });
    // a reset already past does not shorten the back-off
    expect(p.next({ kind: 'rate-limit', resetEpochSeconds: T0 / 1000 - 5 }, undefined, T0)).toMatchObject({
      delayMs: 120_000,
    });
  });

  it('401/403 stop with a configuration error', () => {
    const p = new ReconnectPolicy();
    expect(p.next({ kind: 'auth', status: 401 }, undefined, T0)).toEqual({
      action: 'stop',
      failure: 'auth',
      status: 401,
    });
    expect(p.next({ kind: 'auth', status: 403 }, 100_000, T0)).toEqual({
      action: 'stop',
      failure: 'auth',
      status: 403,
    });
  });

  it('an established connection that drops is retried immediately, once; then the class back-off applies', () => {
    const p = new ReconnectPolicy();
    // up for 1 s, then dropped: immediate retry
    expect(p.next({ kind: 'network' }, 1_000, T0)).toMatchObject({
      action: 'retry',
      delayMs: 0,
      immediate: true,
    });
    // the immediate reconnect fails to connect: back off
    expect(p.next({ kind: 'http', status: 503 }, undefined, T0)).toMatchObject({ delayMs: 5_000 });
    expect(p.next({ kind: 'network' }, undefined, T0)).toMatchObject({ delayMs: 250 });
  });

  it('accept-then-drop does not reset the schedule (twitter-api-v2 defect): no tight loop', () => {
    const p = new ReconnectPolicy({ stableAfterMs: 30_000 });
    const seen: ReconnectDecision[] = [];
    for (let i = 0; i < 6; i++) seen.push(p.next({ kind: 'network' }, 200, T0));
    expect(seen.map((d) => (d.action === 'retry' ? d.delayMs : -1))).toEqual([0, 250, 500, 750, 1000, 1250]);
  });

  it('a connection that stayed up for stableAfterMs resets the schedule and re-arms the immediate retry', () => {
    const p = new ReconnectPolicy({ stableAfterMs: 30_000 });
    delays(p, { kind: 'http', status: 500 }, 4); // 5, 10, 20, 40 s
    expect(p.next({ kind: 'network' }, 30_000, T0)).toMatchObject({ delayMs: 0, immediate: true });
    expect(p.next({ kind: 'http', status: 500 }, undefined, T0)).toMatchObject({ delayMs: 5_000 });
  });

  it('is pure: the history passed in is not mutated', () => {
    const h = initialHistory();
    const { history } = decideReconnect(h, { kind: 'network' }, undefined, T0);
    expect(h).toEqual(initialHistory());
    expect(history.network).toBe(1);
  });

  it('a fake clock drives the total wait of a failing-connect sequence per class', () => {
    // Simulates the source's loop with a fake clock: the sum of waits before the 6th attempt.
    for (const [failure, total] of [
      [{ kind: 'network' }, 250 + 500 + 750 + 1000 + 1250],
      [{ kind: 'http', status: 502 }, 5_000 + 10_000 + 20_000 + 40_000 + 80_000],
      [{ kind: 'rate-limit' }, 60_000 * (1 + 2 + 4 + 8 + 16)],
    ] as const) {
      const p = new ReconnectPolicy();
      let clock = T0;
      for (let i = 0; i < 5; i++) {
        const d = p.next(failure, undefined, clock);
        if (d.action === 'retry') clock += d.delayMs;
      }
      expect(clock - T0).toBe(total);
    }
  });
});
