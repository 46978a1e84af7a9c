/**
 * Framing of the X filtered-stream body: bytes in, complete lines out.
 *
 * Correct for any chunking, where `twitter-api-v2`'s parser is not (see the reference notes):
 * - lines are split on the byte `\n` *before* decoding, and each complete line is decoded as a
 *   whole. In UTF-8 the byte 0x0A never occurs inside a multi-byte character, so this is exactly
 *   equivalent to a streaming decoder (`string_decoder`): a character split across chunks is
 *   carried in the pending bytes and decoded once the line is complete. It is also faster: an
 *   ASCII line becomes a compact one-byte string (decoding whole chunks of mixed-script text
 *   makes every line a two-byte string, which `JSON.parse` reads markedly slower);
 * - a trailing `\r` is stripped, so `\r\n` split between chunks, or arriving alone in its own
 *   chunk, still ends exactly one line;
 * - an empty (or whitespace-only) line is a keep-alive: counted, never returned.
 * Invalid UTF-8 becomes U+FFFD, as with any Node decoder.
 *
 * Fast: one `indexOf(0x0a)` scan per byte of input, no re-scanning of a long pending line, no
 * regular expressions. `npm run bench:reader` measures it; `npm run bench:reader-peers` beside
 * `twitter-api-v2` and tweepy. What it costs beyond decoding the lines is within noise there: the
 * gap to the `JSON.parse` ceiling is Node 20's UTF-8 decoding of lines that hold any non-ASCII
 * character (about as long as a third of `JSON.parse`), which no framing removes (decoding ASCII
 * runs separately, whole chunks at once, or in JS were all measured slower).
 */

import { isAscii } from 'node:buffer';

const EMPTY: readonly string[] = Object.freeze([]);
const LF = 10;
const CR = 13;

function isBlank(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c !== 32 && c !== 9 && c !== CR) return false;
  }
  return true;
}

export class LineDecoder {
  /** Bytes of the current, not yet terminated line (copies: callers may reuse their buffers). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Keep-alive lines seen (bare `\r\n`). */
  keepAlives = 0;
  /** Non-empty lines returned. */
  lines = 0;
  /** Bytes pushed. */
  bytes = 0;

  /**
   * Splits one chunk and returns the lines it completes, decoded, without their terminators, in
   * order. The returned array must not be mutated (it may be a shared empty array).
   */
  push(chunk: Buffer | Uint8Array): readonly string[] {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.bytes += buf.length;
    let nl = buf.indexOf(LF);
    if (nl === -1) {
      if (buf.length > 0) this.keep(buf, 0);
      return EMPTY;
    }
    const out: string[] = [];
    let start = 0;
    if (this.pendingBytes > 0) {
      this.pending.push(buf.subarray(0, nl));
      const line = Buffer.concat(this.pending, this.pendingBytes + nl);
      this.pending = [];
      this.pendingBytes = 0;
      this.emit(line, 0, line.length, out);
      start = nl + 1;
      nl = buf.indexOf(LF, start);
    }
    while (nl !== -1) {
      this.emit(buf, start, nl, out);
      start = nl + 1;
      nl = buf.indexOf(LF, start);
    }
    if (start < buf.length) this.keep(buf, start);
    this.lines += out.length;
    return out;
  }

  private keep(buf: Buffer, start: number): void {
    const copy = Buffer.allocUnsafe(buf.length - start);
    buf.copy(copy, 0, start);
    this.pending.push(copy);
    this.pendingBytes += copy.length;
  }

  private emit(buf: Buffer, start: number, end: number, out: string[]): void {
    if (end > start && buf[end - 1] === CR) end--;
    if (end === start || (buf[start]! <= 32 && isBlank(buf, start, end))) {
      this.keepAlives++;
      return;
    }
    // ASCII fast path (SIMD check): latin1 decoding of ASCII is a copy, several times faster.
    const view = buf.subarray(start, end);
    out.push(isAscii(view) ? view.toString('latin1') : view.toString('utf8'));
  }

  /** Bytes of the line in progress (0 = the stream is at a line boundary). */
  get pendingLength(): number {
    return this.pendingBytes;
  }

  /**
   * End of the body: returns the unterminated trailing line, if any (a line cut by a dropped
   * connection; the caller decides what it is), and resets the decoder for reuse.
   */
  end(): string | undefined {
    if (this.pendingBytes === 0) return undefined;
    const rest = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let end = rest.length;
    if (rest[end - 1] === CR) end--;
    if (end === 0 || isBlank(rest, 0, end)) return undefined;
    return rest.toString('utf8', 0, end);
  }
}
