/**
 * Framing of the X filtered-stream body: bytes in, complete lines out.
 *
 * Correct for any chunking, where `twitter-api-v2`'s parser is not (see the reference notes):
 * - a streaming UTF-8 decoder (`string_decoder`) carries a multi-byte character split across chunks;
 * - lines end at `\n`; a trailing `\r` is stripped, so `\r\n` split between chunks, or arriving
 *   alone in its own chunk, still ends exactly one line;
 * - an empty (or whitespace-only) line is a keep-alive: counted, never returned.
 *
 * Fast: one `indexOf('\n')` scan per byte of input, no per-chunk re-scanning of a long pending
 * line, no regular expressions. `npm run bench:reader` measures it.
 */
import { StringDecoder } from 'node:string_decoder';

const EMPTY: readonly string[] = Object.freeze([]);
const CR = 13;

function isBlank(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

export class LineDecoder {
  private readonly decoder = new StringDecoder('utf8');
  /** Text of the current, not yet terminated line. */
  private pending = '';
  /** Keep-alive lines seen (bare `\r\n`). */
  keepAlives = 0;
  /** Non-empty lines returned. */
  lines = 0;
  /** Bytes pushed. */
  bytes = 0;

  /**
   * Decodes one chunk and returns the lines it completes, without their terminators, in order.
   * The returned array must not be mutated (it may be a shared empty array).
   */
  push(chunk: Buffer | Uint8Array): readonly string[] {
    this.bytes += chunk.length;
    const decoded = this.decoder.write(chunk as Buffer);
    const first = decoded.indexOf('\n');
    if (first === -1) {
      if (decoded.length > 0) this.pending += decoded;
      return EMPTY;
    }
    let text: string;
    let nl: number;
    if (this.pending.length > 0) {
      nl = this.pending.length + first;
      text = this.pending + decoded;
    } else {
      nl = first;
      text = decoded;
    }
    const out: string[] = [];
    let start = 0;
    while (nl !== -1) {
      let end = nl;
      if (end > start && text.charCodeAt(end - 1) === CR) end--;
      if (end === start || (text.charCodeAt(start) <= 32 && isBlank(text, start, end))) {
        this.keepAlives++;
      } else {
        out.push(text.slice(start, end));
      }
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.pending = start < text.length ? text.slice(start) : '';
    this.lines += out.length;
    return out;
  }

  /** Bytes-as-text of the line in progress (0 = the stream is at a line boundary). */
  get pendingLength(): number {
    return this.pending.length;
  }

  /**
   * End of the body: returns the unterminated trailing line, if any (a line cut by a dropped
   * connection; the caller decides what it is), and resets the decoder for reuse.
   */
  end(): string | undefined {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    if (rest.length === 0 || isBlank(rest, 0, rest.length)) return undefined;
    return rest.endsWith('\r') ? rest.slice(0, -1) : rest;
  }
}
