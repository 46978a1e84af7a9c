import { RateWindow } from '../../../dev/demo/progress';
import { restartDelayMs } from '../../../dev/demo/worker-process';

/** A counter reported every `reportMs` at `perSecond`, read every `sampleMs` starting at `phaseMs`. */
function simulate(perSecond: number, reportMs: number, sampleMs: number, phaseMs: number, untilMs: number) {
  const w = new RateWindow(60_000);
  const rates: (number | undefined)[] = [];
  for (let t = phaseMs; t <= untilMs; t += sampleMs) {
    const reported = Math.floor(t / reportMs) * reportMs;
    const value = (perSecond * reported) / 1000;
    rates.push(w.add(t, { received: value, published: value, loaded: value }).received);
  }
  return rates;
}

describe('demo progress rates', () => {
  it.each([0, 1300, 4900, 7700])(
    'read steadily from counters that move every 10 s (phase %i ms)',
    (phase) => {
      const rates = simulate(40, 10_000, 5000, phase, 300_000);
      expect(rates[0]).toBeUndefined();
      const settled = rates.slice(12); // after the first minute
      for (const r of settled) {
        expect(r).toBeDefined();
        expect(Math.abs(r! - 40)).toBeLessThan(40 * 0.1);
      }
    },
  );

  it('stays within 20 % when the reports drift against the readings (jittered 10 s reports)', () => {
    const w = new RateWindow(60_000);
    // Reports every 10 s ± 3 s (a fixed pseudo-random sequence), read every 5 s.
    const reports: number[] = [];
    for (let t = 0, k = 0; t < 400_000; k++) reports.push((t += 10_000 + (((k * 7919) % 7) - 3) * 1000));
    const shown: number[] = [];
    for (let t = 2500; t <= 400_000; t += 5000) {
      const last = reports.filter((r) => r <= t).at(-1) ?? 0;
      const r = w.add(t, { received: last / 25, published: last / 25, loaded: last / 25 }).received; // 40/s
      if (r !== undefined) shown.push(r);
    }
    expect(shown.length).toBeGreaterThan(60);
    for (const r of shown) expect(Math.abs(r - 40)).toBeLessThan(40 * 0.2);
  });

  it('goes to zero when a counter stops moving for a whole window', () => {
    const w = new RateWindow(60_000);
    let r;
    for (let t = 0; t <= 60_000; t += 5000) r = w.add(t, { received: t, published: t, loaded: t });
    expect(r!.received).toBeGreaterThan(0);
    for (let t = 65_000; t <= 130_000; t += 5000)
      r = w.add(t, { received: 60_000, published: 60_000, loaded: 0 });
    expect(r!.received).toBe(0);
    // A counter that went down (its worker restarted) starts over instead of reading negative.
    expect(r!.loaded).toBe(0);
  });
});

describe('demo worker restart back-off', () => {
  it('doubles from 1 s and stops at 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => restartDelayMs(n))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
  });
});
