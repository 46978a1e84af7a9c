/**
 * Load lanes: the loader's unit of scale-out. A post id always hashes to the same lane
 * (`laneOf(id) = FNV-1a(id) mod LOAD_LANES`), the publisher writes that lane into the `lane`
 * attribute, every lane has its own Pub/Sub subscription filtered on it, and one load child per lane
 * drains it. Two lanes therefore never hold the same id, so they never race each other on `posts`;
 * within a lane the fencing token (see `adapters/bigquery/writer.ts`) keeps attempts apart.
 *
 * Subscriptions: with one lane the loader reads `PUBSUB_SUBSCRIPTION` itself (unfiltered, as before
 * lanes existed). With N > 1 lanes, lane k reads `<PUBSUB_SUBSCRIPTION>-lane-<k>`, filtered on
 * `attributes.lane = "k"`; lane 0 also takes messages without the attribute (a malformed line, a
 * publisher from before lanes), so no message matches no subscription. Every other subscription of
 * the same family (the unfiltered one after a change from 1 to N lanes, lanes ≥ N after a change
 * down) is *retired*: lane 0 drains it until it is empty, and `npm run setup -- --prune-lanes`
 * deletes it once it is (README, "Changing the number of load lanes").
 */

/** Largest LOAD_LANES accepted: a lane is a subscription and a child workflow each. */
export const MAX_LOAD_LANES = 64;

/** FNV-1a (32-bit) of the UTF-16 code units of `s`: stable, cheap, and the same in every process. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The lane of a post id among `lanes` lanes. */
export function laneOf(postId: string, lanes: number): number {
  return lanes <= 1 ? 0 : fnv1a32(postId) % lanes;
}

/** The subscription lane `lane` of `lanes` reads. */
export function laneSubscription(subscription: string, lane: number, lanes: number): string {
  return lanes <= 1 ? subscription : `${subscription}-lane-${lane}`;
}

/** The Pub/Sub subscription filter of a lane (none with one lane). */
export function laneFilter(lane: number, lanes: number): string | undefined {
  if (lanes <= 1) return undefined;
  return lane === 0 ? 'attributes.lane = "0" OR NOT attributes:lane' : `attributes.lane = "${lane}"`;
}

/**
 * The lane a delivered message belongs to, by the same rule as the subscription filter: its `lane`
 * attribute, or lane 0 without one. The loader checks it on every message because the Pub/Sub
 * emulator ignores subscription filters (it delivers every message to every lane); a message of
 * another lane is acknowledged unread there, which is what a real filter does for it.
 */
export function laneOfMessage(attributes: Record<string, string>): number {
  const v = attributes.lane;
  if (v === undefined || v === '') return 0;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

const LANE_SUFFIX = /-lane-(\d+)$/;

/**
 * The subscriptions of this family that no current lane reads, from the names of the topic's
 * subscriptions: the unfiltered one when there are several lanes, and `-lane-<k>` for k ≥ `lanes`.
 */
export function retiredSubscriptions(existing: string[], subscription: string, lanes: number): string[] {
  return existing.filter((name) => {
    if (name === subscription) return lanes > 1;
    if (!name.startsWith(`${subscription}-lane-`)) return false;
    const m = LANE_SUFFIX.exec(name);
    if (!m || name !== `${subscription}-lane-${m[1]}`) return false;
    return lanes <= 1 || Number(m[1]) >= lanes;
  });
}
