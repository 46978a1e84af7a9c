import fc from 'fast-check';
import { LineDecoder } from '../../../../src/adapters/x/stream-reader';

/** Feeds `body` cut at `cuts` (byte offsets) and collects the lines and the final state. */
function decode(body: Buffer, cuts: number[]): { lines: string[]; keepAlives: number; rest?: string } {
  const d = new LineDecoder();
  const lines: string[] = [];
  let start = 0;
  for (const c of [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b)) {
    lines.push(...d.push(body.subarray(start, c)));
    start = c;
  }
  lines.push(...d.push(body.subarray(start)));
  return { lines, keepAlives: d.keepAlives, rest: d.end() };
}

const postText = fc.string({ unit: 'grapheme', maxLength: 80 });
/** A post line as X sends it (JSON, raw UTF-8, ids as strings). */
const postLine = fc
  .record({
    id: fc.bigInt({ min: 1n, max: 2n ** 63n }),
    text: postText,
    name: fc.string({ unit: 'binary', maxLength: 12 }),
  })
  .map(({ id, text, name }) =>
    JSON.stringify({ data: { id: id.toString(), text }, includes: { users: [{ name }] } }),
  );
/** Items of the body: posts (ended by \r\n or a bare \n) and keep-alives. */
const item = fc.oneof(
  { weight: 6, arbitrary: fc.record({ line: postLine, crlf: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ line: '', crlf: true }) },
);

describe('LineDecoder', () => {
  it('any chunking of a stream of posts yields exactly those posts, byte-identical', () => {
    fc.assert(
      fc.property(
        fc.array(item, { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (items, rawCuts) => {
          const body = Buffer.from(items.map((i) => i.line + (i.crlf ? '\r\n' : '\n')).join(''), 'utf8');
          const cuts = rawCuts.map((c) => (body.length === 0 ? 0 : c % body.length));
          const out = decode(body, cuts);
          const expected = items.filter((i) => i.line !== '').map((i) => i.line);
          expect(out.lines).toEqual(expected);
          expect(out.keepAlives).toBe(items.length - expected.length);
          expect(out.rest).toBeUndefined();
          for (let k = 0; k < expected.length; k++) {
            expect(Buffer.from(out.lines[k]!, 'utf8').equals(Buffer.from(expected[k]!, 'utf8'))).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('one byte at a time gives the same lines as one chunk', () => {
    fc.assert(
      fc.property(fc.array(postLine, { minLength: 1, maxLength: 8 }), (lines) => {
        const body = Buffer.from(lines.map((l) => `${l}\r\n\r\n`).join(''), 'utf8');
        const everyByte = Array.from({ length: body.length }, (_, i) => i);
        expect(decode(body, everyByte).lines).toEqual(lines);
        expect(decode(body, []).lines).toEqual(lines);
      }),
      { numRuns: 50 },
    );
  });

  it('a CRLF arriving alone in its own chunk ends the line (twitter-api-v2 merges two posts here)', () => {
    const d = new LineDecoder();
    const a = '{"data":{"id":"1","text":"a"}}';
    const b = '{"data":{"id":"2","text":"b"}}';
    expect(d.push(Buffer.from(a))).toEqual([]);
    expect(d.push(Buffer.from('\r\n'))).toEqual([a]);
    expect(d.push(Buffer.from(b + '\r'))).toEqual([]);
    expect(d.push(Buffer.from('\n'))).toEqual([b]);
    expect(d.push(Buffer.from('\r\n'))).toEqual([]);
    expect(d.keepAlives).toBe(1);
    expect(d.lines).toBe(2);
  });

  it('a multi-byte character split across chunks is decoded once, not as U+FFFD', () => {
    const line = JSON.stringify({ data: { id: '1', text: '테슬라 🚗 テスラ' } });
    const body = Buffer.from(line + '\r\n', 'utf8');
    const emoji = body.indexOf(Buffer.from('🚗'));
    for (const cut of [emoji + 1, emoji + 2, emoji + 3]) {
      const out = decode(body, [cut]);
      expect(out.lines).toEqual([line]);
      expect(out.lines[0]).not.toContain('\uFFFD');
    }
  });

  it('any bytes, valid UTF-8 or not, decode as each whole line does (invalid sequences: U+FFFD)', () => {
    const isBlank = (b: Buffer): boolean => b.every((c) => c === 32 || c === 9 || c === 13);
    const asLine = (b: Buffer): Buffer => (b.length > 0 && b[b.length - 1] === 13 ? b.subarray(0, -1) : b);
    fc.assert(
      fc.property(
        // Any byte, biased towards line ends and pieces of multi-byte characters (é € 🚗).
        fc.array(
          fc.oneof(
            { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
            {
              weight: 2,
              arbitrary: fc.constantFrom(10, 13, 32, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x9a, 0x97),
            },
          ),
          { maxLength: 300 },
        ),
        fc.array(fc.nat(), { maxLength: 40 }),
        (bytes, rawCuts) => {
          const body = Buffer.from(bytes);
          const cuts = rawCuts.map((c) => (body.length === 0 ? 0 : c % body.length));
          const pieces: Buffer[] = [];
          for (let start = 0; ;) {
            const nl = body.indexOf(10, start);
            pieces.push(body.subarray(start, nl === -1 ? body.length : nl));
            if (nl === -1) break;
            start = nl + 1;
          }
          const tail = asLine(pieces.pop()!);
          const expected = pieces
            .map(asLine)
            .filter((l) => !isBlank(l))
            .map((l) => l.toString('utf8'));
          const out = decode(body, cuts);
          expect(out.lines).toEqual(expected);
          expect(out.rest).toEqual(isBlank(tail) ? undefined : tail.toString('utf8'));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keep-alives between and inside bursts are counted, never returned', () => {
    const d = new LineDecoder();
    const out = d.push(Buffer.from('\r\n\r\n{"a":1}\r\n\r\n{"b":2}\r\n \r\n'));
    expect(out).toEqual(['{"a":1}', '{"b":2}']);
    expect(d.keepAlives).toBe(4);
  });

  it('end() returns an unterminated trailing line and resets', () => {
    const d = new LineDecoder();
    expect(d.push(Buffer.from('{"a":1}\r\n{"b":'))).toEqual(['{"a":1}']);
    expect(d.pendingLength).toBe(5);
    expect(d.end()).toBe('{"b":');
    expect(d.end()).toBeUndefined();
    expect(d.push(Buffer.from('{"c":3}\n'))).toEqual(['{"c":3}']);
  });

  it('does not keep references to the caller’s buffers', () => {
    const d = new LineDecoder();
    const chunk = Buffer.from('{"a":"x');
    d.push(chunk);
    chunk.fill(0x41);
    expect(d.push(Buffer.from('y"}\r\n'))).toEqual(['{"a":"xy"}']);
  });
});
