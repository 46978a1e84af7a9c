/**
 * `npm run bench:reader [-- --posts 50000 --runs 5 --max-chunk 65536 --check]`
 *
 * Throughput of the stream reader (`LineDecoder` + `JSON.parse` of every line) over a large
 * in-memory NDJSON body (posts from the stand-in's corpus, `\r\n` endings, keep-alives between
 * bursts) cut into random chunks (1 byte to `--max-chunk`), against the ceiling of `JSON.parse`
 * alone over the same lines pre-split, in the same process. Also shows reader + normalisation, and
 * UTF-8 decode + `JSON.parse` of the pre-split lines as bytes: the least work any reader of bytes
 * does, so reader / that floor is what the framing itself costs (`bench:reader-peers` has the peers).
 * Each figure is the best of `--runs` interleaved runs. Target: ≥ 100 MB/s and ≥ 0.7 of the ceiling (`--check` exits 1 when missed).
 */
import { parseArgs } from 'node:util';
import { LineDecoder } from '../../src/adapters/x/stream-reader';
import { normalizeStreamLine } from '../../src/domain/normalize';
import { rng } from '../x-api-standin/corpus';
import { corpusLines } from './corpus-lines';

const { values } = parseArgs({
  options: {
    posts: { type: 'string', default: '50000' },
    runs: { type: 'string', default: '7' },
    'max-chunk': { type: 'string', default: '65536' },
    seed: { type: 'string', default: '42' },
    check: { type: 'boolean', default: false },
  },
});
const nPosts = Number(values.posts);
const runs = Number(values.runs);
const maxChunk = Number(values['max-chunk']);
const seed = Number(values.seed);

// ---- build the body ---------------------------------------------------------------------------
const lines = corpusLines(nPosts, seed);
const r = rng(seed);
const parts: string[] = [];
for (const line of lines) {
  parts.push(line, '\r\n');
  if (r() < 0.01) parts.push('\r\n'); // keep-alives between bursts
}
const body = Buffer.from(parts.join(''), 'utf8');
const chunks: Buffer[] = [];
for (let off = 0; off < body.length;) {
  const size = 1 + Math.floor(r() ** 2 * maxChunk);
  chunks.push(body.subarray(off, Math.min(body.length, off + size)));
  off += size;
}
const mb = body.length / 1e6;
console.log(
  `body: ${lines.length} posts, ${mb.toFixed(1)} MB, ${chunks.length} chunks ` +
    `(mean ${(body.length / chunks.length).toFixed(0)} B, max ${maxChunk} B)`,
);

// ---- measure ------------------------------------------------------------------------------------
let sink = 0;
function ceiling(): number {
  const t = process.hrtime.bigint();
  for (const line of lines) sink += (JSON.parse(line) as { data: object }).data ? 1 : 0;
  return Number(process.hrtime.bigint() - t) / 1e9;
}
const byteLines = lines.map((l) => Buffer.from(l, 'utf8'));
function decodeFloor(): number {
  const t = process.hrtime.bigint();
  for (const b of byteLines) sink += (JSON.parse(b.toString('utf8')) as { data: object }).data ? 1 : 0;
  return Number(process.hrtime.bigint() - t) / 1e9;
}
function reader(): number {
  const t = process.hrtime.bigint();
  const d = new LineDecoder();
  let n = 0;
  for (const c of chunks) {
    for (const line of d.push(c)) {
      sink += (JSON.parse(line) as { data: object }).data ? 1 : 0;
      n++;
    }
  }
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (n !== lines.length) throw new Error(`reader produced ${n} lines, expected ${lines.length}`);
  return s;
}
function readerNormalize(): number {
  const t = process.hrtime.bigint();
  const d = new LineDecoder();
  const at = new Date().toISOString();
  for (const c of chunks)
    for (const line of d.push(c)) sink += normalizeStreamLine(line, at).kind === 'post' ? 1 : 0;
  return Number(process.hrtime.bigint() - t) / 1e9;
}

// Best of N for both sides: the machine is shared, and the fastest run is the least disturbed one.
const best = (xs: number[]): number => Math.min(...xs);
const ceil: number[] = [];
const floor: number[] = [];
const read: number[] = [];
const norm: number[] = [];
ceiling();
reader(); // warm-up
for (let i = 0; i < runs; i++) {
  ceil.push(ceiling());
  floor.push(decodeFloor());
  read.push(reader());
  norm.push(readerNormalize());
}
const fmt = (label: string, s: number): string =>
  `${label.padEnd(34)} ${(lines.length / s).toFixed(0).padStart(9)} posts/s ${(mb / s).toFixed(1).padStart(8)} MB/s`;
const c = best(ceil);
const rd = best(read);
console.log(fmt('JSON.parse ceiling (pre-split)', c));
console.log(fmt('decode + JSON.parse (pre-split)', best(floor)));
console.log(fmt('reader: LineDecoder + JSON.parse', rd));
console.log(fmt('reader + normalizeStreamLine', best(norm)));
const ratio = c / rd;
const mbs = mb / rd;
const ok = mbs >= 100 && ratio >= 0.7;
console.log(`ratio reader/decode floor: ${(best(floor) / rd).toFixed(2)} (what the framing costs)`);
console.log(
  `ratio reader/ceiling: ${ratio.toFixed(2)} (target ≥ 0.70); reader ${mbs.toFixed(0)} MB/s (target ≥ 100): ${ok ? 'OK' : 'BELOW TARGET'}`,
);
if (sink < 0) console.log(sink);
if (values.check && !ok) process.exit(1);
