/**
 * Rates for the demo's progress line. The supervisor learns the stream's counters from progress
 * reports every `PROGRESS_REPORT_INTERVAL_MS` (10 s) and the loader's from each batch (every
 * `LOAD_INTERVAL_MS`), while the line is printed every 5 s: a rate taken between two consecutive
 * lines reads double, then zero. So a counter's rate is taken between the first and the last
 * moment it changed within a trailing window (by default a minute): the counter moves in steps, and
 * measuring from step to step divides whole steps by the time they took.
 */
export type CounterName = 'received' | 'published' | 'loaded';
export type Counters = Record<CounterName, number>;
export type Rates = Record<CounterName, number | undefined>;

interface Step {
  at: number;
  value: number;
  baseline?: boolean;
}

export class RateWindow {
  private readonly steps: Record<CounterName, Step[]> = { received: [], published: [], loaded: [] };
  private readonly last: Partial<Counters> = {};

  constructor(private readonly windowMs = 60_000) {}

  /** Records the counters read at `at` (ms) and returns the per-second rates (undefined: too early). */
  add(at: number, counters: Counters): Rates {
    const out: Partial<Rates> = {};
    for (const name of Object.keys(this.steps) as CounterName[]) {
      const v = counters[name];
      const prev = this.last[name];
      const steps = this.steps[name];
      // The first reading (or a lower one: its source restarted) is a baseline, not a step: the
      // counter may have held that value for long. Rates run from the first step after it.
      if (prev === undefined || v < prev) steps.splice(0, steps.length, { at, value: v, baseline: true });
      else if (v > prev) {
        if (steps.length === 1 && steps[0]!.baseline) steps.splice(0, 1);
        steps.push({ at, value: v });
      }
      this.last[name] = v;
      while (steps.length > 2 && at - steps[1]!.at >= this.windowMs) steps.shift();
      const first = steps[0]!;
      const lastStep = steps[steps.length - 1]!;
      if (at - lastStep.at >= this.windowMs) {
        out[name] = 0; // nothing has moved for a whole window
      } else if (steps.length < 2 || steps[0]!.baseline || lastStep.at - first.at < this.windowMs / 2) {
        // Not yet half a window of whole steps: two steps read 5 s apart (a 10 s report seen early,
        // then one seen late) would show double the rate.
        out[name] = undefined;
      } else {
        out[name] = (lastStep.value - first.value) / ((lastStep.at - first.at) / 1000);
      }
    }
    return out as Rates;
  }
}

export const formatRate = (r: number | undefined): string => (r === undefined ? '-' : r.toFixed(1));
