import {
  fnv1a32,
  laneFilter,
  laneOf,
  laneOfMessage,
  laneSubscription,
  retiredSubscriptions,
} from '../../../src/domain/lanes';

describe('load lanes', () => {
  test('a post id always lands in the same lane, and ids spread over every lane', () => {
    const ids = Array.from({ length: 4000 }, (_, i) =>
      (1_800_000_000_000_000_000n + BigInt(i * 7)).toString(),
    );
    const counts = [0, 0, 0, 0];
    for (const id of ids) {
      const lane = laneOf(id, 4);
      expect(laneOf(id, 4)).toBe(lane);
      counts[lane]! += 1;
    }
    for (const c of counts) expect(c).toBeGreaterThan(800); // 1,000 expected per lane
    expect(laneOf(ids[0]!, 1)).toBe(0);
  });

  test('FNV-1a matches its published test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  test('one lane reads the unfiltered subscription; several read filtered lane subscriptions', () => {
    expect(laneSubscription('posts-sub', 0, 1)).toBe('posts-sub');
    expect(laneFilter(0, 1)).toBeUndefined();
    expect(laneSubscription('posts-sub', 2, 4)).toBe('posts-sub-lane-2');
    expect(laneFilter(2, 4)).toBe('attributes.lane = "2"');
    // Lane 0 also takes messages without the attribute, so no message matches no subscription.
    expect(laneFilter(0, 4)).toBe('attributes.lane = "0" OR NOT attributes:lane');
  });

  test('a message without a lane attribute belongs to lane 0, as the filter says', () => {
    expect(laneOfMessage({})).toBe(0);
    expect(laneOfMessage({ lane: '' })).toBe(0);
    expect(laneOfMessage({ lane: '3' })).toBe(3);
    expect(laneOfMessage({ lane: 'x' })).toBe(0);
  });

  test('retired subscriptions: the unfiltered one with several lanes, lanes beyond the count', () => {
    const all = [
      'posts-sub',
      'posts-sub-lane-0',
      'posts-sub-lane-1',
      'posts-sub-lane-2',
      'other',
      'posts-sub-lane-x',
    ];
    expect(retiredSubscriptions(all, 'posts-sub', 2)).toEqual(['posts-sub', 'posts-sub-lane-2']);
    expect(retiredSubscriptions(all, 'posts-sub', 1)).toEqual([
      'posts-sub-lane-0',
      'posts-sub-lane-1',
      'posts-sub-lane-2',
    ]);
    expect(retiredSubscriptions(all, 'posts-sub', 4)).toEqual(['posts-sub']);
  });
});
