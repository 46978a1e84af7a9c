/**
 * A short-lived, single-flight cache: while a value is being computed every caller shares the same
 * promise, and a computed value is served to everyone for `ttlMs`. Many viewers cost one query.
 * Failures are shared by the callers waiting on them but not kept.
 */
export interface SingleFlightCache {
  get<T>(key: string, load: () => Promise<T>): Promise<T>;
  clear(): void;
}

export function createSingleFlightCache(ttlMs: number, now: () => number = Date.now): SingleFlightCache {
  const entries = new Map<string, { expires: number; value: Promise<unknown> }>();
  return {
    get<T>(key: string, load: () => Promise<T>): Promise<T> {
      const hit = entries.get(key);
      if (hit && hit.expires > now()) return hit.value as Promise<T>;
      const value = load().then(
        (v) => {
          const entry = entries.get(key);
          if (entry?.value === value) entry.expires = now() + ttlMs;
          return v;
        },
        (err: unknown) => {
          if (entries.get(key)?.value === value) entries.delete(key);
          throw err;
        },
      );
      // In flight: never expires until it settles.
      entries.set(key, { expires: Number.POSITIVE_INFINITY, value });
      return value;
    },
    clear: () => entries.clear(),
  };
}
