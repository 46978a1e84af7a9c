/**
 * The stream lines the reader benchmarks read: `n` posts from the stand-in's corpus (seeded) that
 * match three rules in English, Korean and a phrase, so the text mixes ASCII and multi-byte UTF-8.
 */
import { Corpus } from '../x-api-standin/corpus';
import { compileRule } from '../x-api-standin/rule-engine';

export function corpusLines(n: number, seed: number, now = Date.now()): string[] {
  const rules = ['tesla', 'ev OR 전기차', '"model 3"'].map((value, i) => {
    const c = compileRule(value);
    return { id: String(1000 + i), tag: `t${i}`, seeds: c.seeds, match: c.match };
  });
  const corpus = new Corpus(seed);
  const lines: string[] = [];
  while (lines.length < n) {
    const p = corpus.next(rules, now);
    if (p) lines.push(p.line);
  }
  return lines;
}
