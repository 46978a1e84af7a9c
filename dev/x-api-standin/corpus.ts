/**
 * A seeded, realistic post generator for the stand-in: several languages (English, Spanish, German,
 * Korean, Japanese), emoji, hashtags, mentions, URLs, long posts with `note_tweet`, replies, quotes,
 * reposts and edits. Everything is derived from the seed and the post's sequence number, so the
 * same seed gives the same ids and texts (only `created_at` follows the wall clock).
 *
 * To make every generated post match the active rules, the generator picks a rule and puts that
 * rule's positive words into the text (see `rule-engine.ts` for the matching).
 */
import type { MatchablePost } from './rule-engine';

/** mulberry32: small, fast, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** X's snowflake epoch (2010-11-04). */
const TWEPOCH = 1288834974657n;
/** A fixed virtual time base so ids are stable per seed: 2024-01-01T00:00:00Z. */
const BASE_MS = 1704067200000n;

/**
 * A snowflake-like id: virtual time (one ms per 4096 posts, from `baseMs`) | worker (from seed) | sequence.
 * @default baseMs 2024-01-01T00:00:00Z
 */
export function snowflake(seed: number, seq: number, kind = 0, baseMs: bigint = BASE_MS): string {
  const ms = baseMs - TWEPOCH + BigInt(Math.floor(seq / 4096));
  const worker = BigInt(((seed >>> 0) % 512) * 2 + kind);
  return ((ms << 22n) | (worker << 12n) | BigInt(seq % 4096)).toString();
}

interface User {
  id: string;
  username: string;
  name: string;
  verified: boolean;
  public_metrics: {
    followers_count: number;
    following_count: number;
    tweet_count: number;
    listed_count: number;
  };
}

type Lang = 'en' | 'es' | 'de' | 'ko' | 'ja';

const TEMPLATES: Record<Lang, string[]> = {
  en: [
    'Just saw the new {kw} update and honestly it is wild {emoji}',
    'Thread on {kw}: what nobody tells you about charging in winter {emoji} {tag}',
    'Anyone else think {kw} pricing makes no sense right now? {tag}',
    '{kw} delivery day! {emoji}{emoji} {url}',
    'Reading this piece about {kw} and supply chains {url} {tag}',
    'Hot take: {kw} is the most misunderstood company of the decade',
  ],
  es: [
    'Hoy probé el {kw} por primera vez y me encantó {emoji} {tag}',
    '¿Alguien sabe cuándo llega la actualización de {kw} a España? {emoji}',
    'Análisis completo del {kw}: autonomía, precio y diseño {url}',
    'Qué opinan del nuevo {kw}? Yo todavía no me decido {tag}',
  ],
  de: [
    'Heute endlich den {kw} Probe gefahren, Fazit: überraschend leise {emoji}',
    'Warum ist {kw} in Deutschland so teuer geworden? {tag} {url}',
    'Größte Überraschung der Woche: {kw} öffnet die Ladesäulen für alle {emoji}',
    'Kurze Frage an die Community: Lohnt sich {kw} im Winter? {tag}',
  ],
  ko: [
    '오늘 {kw} 시승해봤는데 정말 조용하네요 {emoji} {tag}',
    '{kw} 새 소프트웨어 업데이트 후기 공유합니다 {url}',
    '요즘 {kw} 주가 왜 이렇게 움직이는 걸까요? {emoji}',
    '{kw} 충전소가 집 근처에 생겼어요! {emoji}{emoji} {tag}',
  ],
  ja: [
    '今日{kw}に試乗しました。加速がすごい {emoji} {tag}',
    '{kw}の新しいアップデート、みんなもう試した？ {url}',
    '週末は{kw}でドライブ。充電の計画が大事ですね {emoji}',
    '{kw}のニュースを読んで考えたこと {tag} {emoji}',
  ],
};

const LONG_TAIL: Record<Lang, string> = {
  en: ' Longer thoughts: I have been following this for years, and the pattern is always the same. First the announcement, then the doubts, then the quiet delivery months later. What changed this time is the scale, the software and the price. Curious what you all think, replies open. ',
  es: ' Reflexión larga: llevo años siguiendo este tema y el patrón siempre es el mismo. Primero el anuncio, luego las dudas y, meses después, la entrega sin ruido. Lo que cambió esta vez es la escala, el software y el precio. ¿Qué opinan? ',
  de: ' Längere Gedanken: Ich verfolge das seit Jahren, und das Muster ist immer gleich. Erst die Ankündigung, dann die Zweifel, dann Monate später die leise Auslieferung. Diesmal sind Größe, Software und Preis anders. Was meint ihr? ',
  ko: ' 긴 생각: 몇 년째 지켜보고 있는데 패턴은 늘 같습니다. 먼저 발표, 그다음 의심, 그리고 몇 달 뒤 조용한 출시. 이번에 달라진 건 규모와 소프트웨어, 그리고 가격입니다. 여러분 생각은 어떠세요? 답글 환영합니다. ',
  ja: ' 長めの感想：何年も追いかけてきましたが、パターンはいつも同じです。まず発表、次に疑問、そして数か月後に静かに納車。今回違うのは規模とソフトウェアと価格です。皆さんはどう思いますか？返信お待ちしています。',
};

const EMOJI = ['🚗', '⚡', '🔋', '😂', '🔥', '👀', '🙌', '🇩🇪', '🇰🇷', '🇯🇵', '👨‍👩‍👧', '❤️', '🤔', '✨'];
const TAGS = [
  'EV',
  'Tesla',
  'ElectricCars',
  'Model3',
  'FSD',
  '電気自動車',
  '전기차',
  'Elektroauto',
  'cocheeléctrico',
];
const DOMAINS = [
  'example.com',
  'news.example.org',
  'blog.example.net',
  'techpress.example',
  'www.example.co.jp',
];
const FIRST = [
  'Alex',
  'María',
  'Jörg',
  '민준',
  '結衣',
  'Sam',
  'Lucía',
  'Anke',
  '서연',
  '蓮',
  'Chris',
  'José',
];
const LAST = ['Smith', 'García', 'Müller', '김', '佐藤', 'Lee', 'López', 'Schmidt', '박', '鈴木'];
const LANGS: Lang[] = ['en', 'en', 'en', 'es', 'de', 'ko', 'ja'];

export interface GeneratedPost {
  id: string;
  /** The complete JSON line, without the terminating `\r\n`. */
  line: string;
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Code-point length of a string prefix (X's entity indices count code points). */
const cpLen = (s: string): number => {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
};

/** The parts of a post (a stream line's `data` and `includes`) that rules look at. */
export interface PostJson {
  data: {
    text: string;
    lang?: string;
    author_id?: string;
    note_tweet?: { text: string };
    entities?: {
      hashtags?: { tag: string }[];
      mentions?: { username: string }[];
      urls?: unknown[];
    };
    referenced_tweets?: { type: string }[];
  };
  includes?: { users?: { id: string; username: string }[] };
}

/**
 * What the rule engine matches for a post, from its JSON: the generator decides with it which rules
 * a post matches, and search which posts a query finds, so both agree.
 */
export function matchableOf(p: PostJson): MatchablePost {
  const d = p.data;
  const refs = d.referenced_tweets ?? [];
  const author = p.includes?.users?.find((u) => u.id === d.author_id);
  return {
    textLower: (d.note_tweet?.text ?? d.text).toLowerCase(),
    hashtags: (d.entities?.hashtags ?? []).map((h) => h.tag.toLowerCase()),
    mentions: (d.entities?.mentions ?? []).map((m) => m.username.toLowerCase()),
    lang: d.lang ?? '',
    username: (author?.username ?? '').toLowerCase(),
    isRetweet: refs.some((x) => x.type === 'retweeted'),
    isReply: refs.some((x) => x.type === 'replied_to'),
    isQuote: refs.some((x) => x.type === 'quoted'),
    hasLinks: (d.entities?.urls ?? []).length > 0,
  };
}

export interface RuleForGeneration {
  id: string;
  tag?: string;
  seeds: string[];
  match(p: MatchablePost): boolean;
}

export class Corpus {
  private readonly users: User[];
  private readonly seed: number;
  private seq = 0;
  private readonly baseMs: bigint;

  /**
   * `idTimeMs` sets the virtual time of the post ids (users keep theirs): the same seed gives the
   * same posts, and a later `idTimeMs` gives them ids no earlier run used (a demo run again on
   * the same BigQuery table loads new rows instead of finding every id there already).
   * @default idTimeMs 2024-01-01T00:00:00Z
   */
  constructor(seed: number, idTimeMs?: number) {
    this.seed = seed;
    this.baseMs = idTimeMs === undefined ? BASE_MS : BigInt(Math.floor(idTimeMs));
    const r = rng(seed ^ 0x5bd1e995);
    this.users = Array.from({ length: 200 }, (_, i) => {
      const first = pick(r, FIRST);
      const last = pick(r, LAST);
      return {
        id: snowflake(seed, i, 1),
        username: `${first.normalize('NFD').replace(/[^A-Za-z]/g, '') || 'user'}_${i}`.toLowerCase(),
        name: `${first} ${last}`,
        verified: r() < 0.1,
        public_metrics: {
          followers_count: Math.floor(r() ** 3 * 2_000_000),
          following_count: Math.floor(r() * 2000),
          tweet_count: Math.floor(r() * 50_000),
          listed_count: Math.floor(r() * 100),
        },
      };
    });
  }

  /** Number of posts generated so far. */
  get generated(): number {
    return this.seq;
  }

  /**
   * Generates the next post that matches at least one of `rules` (tries a few times), or undefined
   * when there are no rules or nothing matched. Consumes one sequence number per attempt.
   */
  next(rules: readonly RuleForGeneration[], nowMs: number): GeneratedPost | undefined {
    if (rules.length === 0) return undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const p = this.build(rules, nowMs);
      if (p) return p;
    }
    return undefined;
  }

  private build(rules: readonly RuleForGeneration[], nowMs: number): GeneratedPost | undefined {
    const seq = this.seq++;
    const r = rng((this.seed * 2654435761) ^ seq);
    const id = snowflake(this.seed, seq, 0, this.baseMs);
    const rule = pick(r, rules);
    const kw = rule.seeds.length > 0 ? rule.seeds.join(' ') : 'tesla';
    const lang = pick(r, LANGS);
    const author = pick(r, this.users);
    const kind = r();
    const hashtags: string[] = [];
    const mentions: string[] = [];
    const urls: { url: string; expanded_url: string; display_url: string }[] = [];

    let text = pick(r, TEMPLATES[lang]).replace('{kw}', kw);
    text = text.replace(/\{emoji\}/g, () => pick(r, EMOJI));
    text = text.replace('{tag}', () => {
      const t = pick(r, TAGS);
      hashtags.push(t);
      return `#${t}`;
    });
    text = text.replace('{url}', () => {
      const short = `https://t.co/${id.slice(-10)}`;
      const dom = pick(r, DOMAINS);
      urls.push({ url: short, expanded_url: `https://${dom}/a/${seq}`, display_url: `${dom}/a/${seq}` });
      return short;
    });

    const referenced: { type: string; id: string }[] = [];
    let conversationId = id;
    let editHistory = [id];
    const other = pick(r, this.users);
    if (kind < 0.15 && seq > 0) {
      // reply
      const parent = snowflake(this.seed, Math.floor(r() * seq), 0, this.baseMs);
      referenced.push({ type: 'replied_to', id: parent });
      conversationId = parent;
      mentions.push(other.username);
      text = `@${other.username} ${text}`;
    } else if (kind < 0.25 && seq > 0) {
      referenced.push({ type: 'quoted', id: snowflake(this.seed, Math.floor(r() * seq), 0, this.baseMs) });
    } else if (kind < 0.35 && seq > 0) {
      referenced.push({ type: 'retweeted', id: snowflake(this.seed, Math.floor(r() * seq), 0, this.baseMs) });
      mentions.push(other.username);
      text = `RT @${other.username}: ${text}`;
    } else if (kind < 0.4 && seq > 0) {
      // an edit: a new id whose history starts with an earlier post
      editHistory = [snowflake(this.seed, Math.floor(r() * seq), 0, this.baseMs), id];
    }

    let fullText = text;
    const long = kind > 0.9;
    if (long) fullText = text + LONG_TAIL[lang] + LONG_TAIL[lang] + kw;
    const entities = (t: string): Record<string, unknown> | undefined => {
      const e: Record<string, unknown> = {};
      if (hashtags.length)
        e.hashtags = hashtags.map((tag) => {
          const i = t.indexOf(`#${tag}`);
          const start = cpLen(t.slice(0, i));
          return { start, end: start + cpLen(tag) + 1, tag };
        });
      if (mentions.length)
        e.mentions = mentions.map((username) => {
          const i = t.indexOf(`@${username}`);
          const start = cpLen(t.slice(0, i));
          return { start, end: start + username.length + 1, username, id: other.id };
        });
      if (urls.length)
        e.urls = urls.map((u) => {
          const i = t.indexOf(u.url);
          const start = cpLen(t.slice(0, i));
          return { start, end: start + u.url.length, ...u };
        });
      return Object.keys(e).length ? e : undefined;
    };

    const data: Record<string, unknown> = {
      id,
      text: long ? Array.from(fullText).slice(0, 279).join('') + '…' : fullText,
      created_at: new Date(nowMs).toISOString(),
      author_id: author.id,
      lang,
      conversation_id: conversationId,
      edit_history_tweet_ids: editHistory,
      possibly_sensitive: r() < 0.02,
      public_metrics: {
        retweet_count: Math.floor(r() * 50),
        reply_count: Math.floor(r() * 20),
        like_count: Math.floor(r() * 500),
        quote_count: Math.floor(r() * 5),
        bookmark_count: Math.floor(r() * 10),
        impression_count: Math.floor(r() * 20_000),
      },
    };
    const ents = entities(text);
    if (ents) data.entities = ents;
    if (referenced.length) data.referenced_tweets = referenced;
    if (long) {
      const noteEnts = entities(fullText);
      data.note_tweet = noteEnts ? { text: fullText, entities: noteEnts } : { text: fullText };
    }

    const includes = { users: [author] };
    // `data` is built field by field above; it has the shape `PostJson` reads.
    const matchable = matchableOf({ data: data as unknown as PostJson['data'], includes });
    const matching = rules.filter((ru) => ru.match(matchable));
    if (matching.length === 0) return undefined;
    const line = JSON.stringify({
      data,
      includes,
      matching_rules: matching.map((m) => (m.tag !== undefined ? { id: m.id, tag: m.tag } : { id: m.id })),
    });
    return { id, line };
  }
}
