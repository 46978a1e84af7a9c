/**
 * A small subset of X's filtered-stream rule language, enough for the stand-in to validate rules the
 * way X does for common mistakes and to match generated posts against the active rules.
 *
 * Supported (case-insensitive):
 * - keywords (`tesla`): the word appears in the text (Latin word boundaries; punctuation and CJK
 *   characters around it do not prevent a match);
 * - `"exact phrase"`; `#hashtag`; `@mention`; `lang:xx`; `is:retweet|reply|quote`;
 *   `has:links|hashtags|mentions`; `from:username`;
 * - `sample:N` (N 1-100): on X, a random N % sample of the matching posts; here it matches every
 *   post (the stand-in only makes posts that match, so a sample of them is still all of them), and
 *   puts nothing in the text: `tesla sample:10` generates posts about tesla;
 * - AND by juxtaposition, `OR`, negation `-term`, parentheses.
 * Any other `operator:value` is matched as a plain keyword of the whole token.
 *
 * Search (`/2/tweets/search/*`) takes the same language, except the stream-only operators
 * ({@link STREAM_ONLY_OPERATORS}, found by {@link streamOnlyOperator}): X refuses a query with one.
 *
 * Invalid (reported with a reason like X's): empty rule, longer than 1024 characters, unbalanced
 * parentheses or quotes, `OR` at either end or doubled, a rule made only of negated terms.
 */

export interface MatchablePost {
  /** Lower-cased full text. */
  textLower: string;
  hashtags: string[]; // lower-cased, without '#'
  mentions: string[]; // lower-cased, without '@'
  lang: string;
  username: string; // lower-cased
  isRetweet: boolean;
  isReply: boolean;
  isQuote: boolean;
  hasLinks: boolean;
}

type Node =
  | { t: 'term'; v: string }
  | { t: 'phrase'; v: string }
  | { t: 'op'; op: string; v: string }
  | { t: 'not'; n: Node }
  | { t: 'and'; ns: Node[] }
  | { t: 'or'; ns: Node[] };

export class RuleSyntaxError extends Error {}

type Tok = { k: '(' | ')' | 'OR' | 'word' | 'phrase'; v: string; neg: boolean };

function tokenize(rule: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < rule.length) {
    const c = rule[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      i++;
      continue;
    }
    let neg = false;
    let j = i;
    if (c === '-' && i + 1 < rule.length && rule[i + 1] !== ' ') {
      neg = true;
      j++;
    }
    const d = rule[j]!;
    if (d === '(' || d === ')') {
      toks.push({ k: d, v: d, neg });
      i = j + 1;
      continue;
    }
    if (d === '"') {
      const end = rule.indexOf('"', j + 1);
      if (end === -1) throw new RuleSyntaxError("Unmatched double quote ('\"')");
      const phrase = rule.slice(j + 1, end).trim();
      if (phrase === '') throw new RuleSyntaxError('Empty quoted phrase');
      toks.push({ k: 'phrase', v: phrase.toLowerCase(), neg });
      i = end + 1;
      continue;
    }
    let e = j;
    while (e < rule.length && !' \t\n()"'.includes(rule[e]!)) e++;
    const word = rule.slice(j, e);
    if (word === 'OR' && !neg) toks.push({ k: 'OR', v: word, neg: false });
    else toks.push({ k: 'word', v: word.toLowerCase(), neg });
    i = e;
  }
  return toks;
}

function parse(rule: string): Node {
  const toks = tokenize(rule);
  let p = 0;
  const orExpr = (): Node => {
    const ns = [andExpr()];
    while (p < toks.length && toks[p]!.k === 'OR') {
      p++;
      if (p >= toks.length || toks[p]!.k === 'OR' || toks[p]!.k === ')') {
        throw new RuleSyntaxError('Ambiguous use of OR: it must be between two terms');
      }
      ns.push(andExpr());
    }
    return ns.length === 1 ? ns[0]! : { t: 'or', ns };
  };
  const andExpr = (): Node => {
    const ns: Node[] = [];
    while (p < toks.length && toks[p]!.k !== 'OR' && toks[p]!.k !== ')') ns.push(unary());
    if (ns.length === 0) {
      throw new RuleSyntaxError(
        p < toks.length && toks[p]!.k === 'OR'
          ? 'Ambiguous use of OR: it must be between two terms'
          : 'Empty group',
      );
    }
    return ns.length === 1 ? ns[0]! : { t: 'and', ns };
  };
  const unary = (): Node => {
    const tok = toks[p++]!;
    let n: Node;
    if (tok.k === '(') {
      n = orExpr();
      if (p >= toks.length || toks[p]!.k !== ')')
        throw new RuleSyntaxError("Unbalanced parentheses: missing ')'");
      p++;
    } else if (tok.k === 'phrase') {
      n = { t: 'phrase', v: tok.v };
    } else {
      const m = /^([a-z_]+):(.+)$/.exec(tok.v);
      if (m?.[1] === 'sample') {
        const pct = Number(m[2]);
        if (!Number.isInteger(pct) || pct < 1 || pct > 100)
          throw new RuleSyntaxError(`sample: takes a whole percentage from 1 to 100, got '${m[2]}'`);
      }
      n =
        m && ['lang', 'is', 'has', 'from', 'sample'].includes(m[1]!)
          ? { t: 'op', op: m[1]!, v: m[2]! }
          : { t: 'term', v: tok.v };
    }
    return tok.neg ? { t: 'not', n } : n;
  };
  if (toks.length === 0) throw new RuleSyntaxError('Rule is empty');
  const node = orExpr();
  if (p < toks.length) {
    throw new RuleSyntaxError(
      toks[p]!.k === ')' ? "Unbalanced parentheses: unexpected ')'" : `Unexpected token '${toks[p]!.v}'`,
    );
  }
  if (!hasPositive(node)) throw new RuleSyntaxError('Rules must contain a non-negation term');
  return node;
}

function hasPositive(n: Node): boolean {
  switch (n.t) {
    case 'not':
      return false;
    case 'and':
      return n.ns.some(hasPositive);
    case 'or':
      return n.ns.every(hasPositive);
    default:
      return true;
  }
}

/** Word characters for keyword boundaries: Latin letters and digits (CJK text has no spaces, so a
 * keyword next to a Korean or Japanese character still matches, as on X). */
const WORD_CHAR = /[A-Za-z0-9_\u00C0-\u024F]/;

function containsWord(text: string, word: string): boolean {
  let from = 0;
  for (;;) {
    const i = text.indexOf(word, from);
    if (i === -1) return false;
    const before = i === 0 ? '' : text[i - 1]!;
    const after = text[i + word.length] ?? '';
    if ((before === '' || !WORD_CHAR.test(before)) && (after === '' || !WORD_CHAR.test(after))) return true;
    from = i + 1;
  }
}

function evalNode(n: Node, post: MatchablePost): boolean {
  switch (n.t) {
    case 'term':
      if (n.v.startsWith('#')) return post.hashtags.includes(n.v.slice(1));
      if (n.v.startsWith('@')) return post.mentions.includes(n.v.slice(1));
      return containsWord(post.textLower, n.v);
    case 'phrase':
      return post.textLower.includes(n.v);
    case 'op':
      switch (n.op) {
        case 'lang':
          return post.lang === n.v;
        case 'from':
          return post.username === n.v.replace(/^@/, '');
        case 'is':
          return n.v === 'retweet'
            ? post.isRetweet
            : n.v === 'reply'
              ? post.isReply
              : n.v === 'quote' && post.isQuote;
        case 'has':
          return n.v === 'links'
            ? post.hasLinks
            : n.v === 'hashtags'
              ? post.hashtags.length > 0
              : n.v === 'mentions' && post.mentions.length > 0;
        case 'sample':
          return true;
        default:
          return false;
      }
    case 'not':
      return !evalNode(n.n, post);
    case 'and':
      return n.ns.every((c) => evalNode(c, post));
    case 'or':
      return n.ns.some((c) => evalNode(c, post));
  }
}

/** A compiled rule. */
export interface CompiledRule {
  match(post: MatchablePost): boolean;
  /** Plain words/phrases/hashtags the generator can put in a post so that it matches. */
  seeds: string[];
}

function positiveSeeds(n: Node, out: string[]): void {
  switch (n.t) {
    case 'term':
      out.push(n.v);
      return;
    case 'phrase':
      out.push(n.v);
      return;
    case 'and':
      for (const c of n.ns) positiveSeeds(c, out);
      return;
    case 'or':
      positiveSeeds(n.ns[0]!, out);
      return;
    default:
      return;
  }
}

/** Validates and compiles a rule value; throws {@link RuleSyntaxError} with X-like details. */
export function compileRule(value: string): CompiledRule {
  if (value.trim() === '') throw new RuleSyntaxError('Rule is empty');
  if (value.length > 1024)
    throw new RuleSyntaxError(`Rule is ${value.length} characters; the maximum is 1024`);
  const node = parse(value);
  const seeds: string[] = [];
  positiveSeeds(node, seeds);
  return { match: (p) => evalNode(node, p), seeds };
}

/** Operators the filtered stream takes and search refuses ("not available in current product"). */
export const STREAM_ONLY_OPERATORS = [
  'sample',
  'followers_count',
  'tweets_count',
  'following_count',
  'listed_count',
] as const;

/**
 * The first stream-only operator in `query` (outside quoted phrases), with its 1-based position,
 * as X reports it: `Reference to invalid operator 'sample'. ... (at position 7)`.
 */
export function streamOnlyOperator(query: string): { op: string; position: number } | undefined {
  let inQuote = false;
  for (let i = 0; i < query.length; i++) {
    const c = query[i]!;
    if (c === '"') {
      inQuote = !inQuote;
      continue;
    }
    if (inQuote) continue;
    const prev = i === 0 ? ' ' : query[i - 1]!;
    if (!' \t\n(-'.includes(prev)) continue;
    for (const op of STREAM_ONLY_OPERATORS) {
      if (query.slice(i, i + op.length + 1).toLowerCase() === `${op}:`) return { op, position: i + 1 };
    }
  }
  return undefined;
}
