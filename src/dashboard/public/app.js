/* The dashboard page: polls /api/summary every 10 s and draws each panel. Plain browser JS, no build. */
/* global uPlot, document, window, fetch, getComputedStyle, setTimeout, clearTimeout, URL */
'use strict';

(function () {
  const REFRESH_MS = 10_000;
  let range = 'hour';
  let timer;
  let last;
  const charts = {};

  const $ = (sel, root = document) => root.querySelector(sel);
  const fmt = new Intl.NumberFormat();
  const n = (v) => fmt.format(Math.round(v ?? 0));
  const secs = (v) =>
    v === null || v === undefined ? '–' : v < 120 ? `${v.toFixed(1)} s` : `${(v / 60).toFixed(1)} min`;
  const clock = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
  const time = (iso) => (iso ? clock.format(new Date(iso)) : '–');
  const ago = (s) =>
    s === null || s === undefined ? '–' : s < 90 ? `${Math.round(s)} s ago` : `${Math.round(s / 60)} min ago`;

  /** Builds an element: el('td', { className: 'n' }, 'text', child…). Text is never parsed as HTML. */
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'style') for (const [p, val] of Object.entries(v)) e.style.setProperty(p, val);
      else if (k in e) e[k] = v;
      else e.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  /** Only http(s) links leave the page (x.com posts, the Temporal Web UI). */
  function link(href, text) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(href).protocol);
    } catch {
      ok = false;
    }
    return ok ? el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, text) : el('span', {}, text);
  }

  const card = (name) => $(`[data-panel="${name}"]`);

  /** Shows a panel's state; returns its data when there is something to draw. */
  function frame(name, panel) {
    const c = card(name);
    const body = $('.body', c);
    c.dataset.state = panel ? panel.state : 'error';
    if (body) body.replaceChildren();
    if (!panel) {
      body?.append(el('p', { className: 'error' }, 'No answer from the server.'));
      return null;
    }
    if (panel.state === 'error') {
      body?.append(el('p', { className: 'error' }, panel.message));
      return null;
    }
    if (panel.state === 'empty') body?.append(el('p', { className: 'empty' }, panel.message));
    return panel.data ?? null;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function axisStyle() {
    const stroke = cssVar('--muted');
    const grid = { stroke: cssVar('--line'), width: 1 };
    return { stroke, grid, ticks: grid };
  }

  /** Replaces a uPlot chart (the data's length and the colour scheme may change between refreshes). */
  function drawChart(id, opts, data) {
    const target = document.getElementById(id);
    if (charts[id]) charts[id].destroy();
    const width = Math.max(200, target.clientWidth);
    charts[id] = new uPlot({ ...opts, width }, data, target);
  }

  /** Whole minutes of the window, so quiet minutes are drawn as zeros rather than interpolated. */
  function minuteAxis(points, key, sinceMs, nowMs) {
    const byMinute = new Map(points.map((p) => [Date.parse(p.minute) / 1000, p]));
    const start = Math.floor(sinceMs / 60000) * 60;
    const end = Math.floor(nowMs / 60000) * 60;
    const xs = [];
    const ys = key.map(() => []);
    for (let t = start; t <= end; t += 60) {
      xs.push(t);
      const p = byMinute.get(t);
      key.forEach((k, i) => ys[i].push(p ? p[k] : 0));
    }
    return [xs, ...ys];
  }

  function postsPerMinute(panel, summary) {
    const data = frame('posts-per-minute', panel);
    const nowMs = Date.parse(summary.generatedAt);
    const sinceMs = nowMs - (summary.range === 'day' ? 86_400_000 : 3_600_000);
    const interval = summary.loadIntervalMs;
    $('#ppm-sub').textContent = data ? `${n(data.totalCreated)} created · ${n(data.totalLoaded)} loaded` : '';
    $('#ppm-note').textContent =
      `The load workflow writes to BigQuery every ${Math.round(interval / 1000)} s (LOAD_INTERVAL_MS): ` +
      'the shaded band at the right edge is the current load interval, whose posts are not loaded yet; ' +
      '"loaded" steps up at each load.';
    const series = minuteAxis(data ? data.points : [], ['created', 'loaded'], sinceMs, nowMs);
    const band = cssVar('--band');
    drawChart(
      'ppm-chart',
      {
        height: 220,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(5, max * 1.1)] } },
        axes: [axisStyle(), { ...axisStyle(), size: 46 }],
        series: [
          {},
          {
            label: 'created (per minute)',
            stroke: cssVar('--accent'),
            width: 2,
            fill: cssVar('--band'),
            points: { show: false },
          },
          {
            label: 'loaded (per minute)',
            stroke: cssVar('--accent2'),
            width: 1.5,
            dash: [4, 3],
            points: { show: false },
          },
        ],
        hooks: {
          drawClear: [
            (u) => {
              const x0 = u.valToPos((nowMs - interval) / 1000, 'x', true);
              const x1 = u.valToPos(nowMs / 1000, 'x', true);
              const { top, height } = u.bbox;
              u.ctx.save();
              u.ctx.fillStyle = band;
              u.ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
              u.ctx.restore();
            },
          ],
        },
      },
      series,
    );
  }

  function barList(name, panel, label) {
    const data = frame(name, panel);
    if (!data || data.items.length === 0) return;
    const max = Math.max(...data.items.map((i) => i.posts));
    const total = data.items.reduce((s, i) => s + i.posts, 0);
    $('.body', card(name)).append(
      el(
        'ol',
        { className: 'bars' },
        data.items.map((i) =>
          el(
            'li',
            { style: { '--w': `${(100 * i.posts) / max}%` }, title: `${i.posts} posts` },
            el('span', {}, label(i.key)),
            el(
              'span',
              {},
              name === 'languages' ? `${n(i.posts)} · ${Math.round((100 * i.posts) / total)}%` : n(i.posts),
            ),
          ),
        ),
      ),
    );
  }

  function stat(label, value, cls) {
    return el('div', {}, el('span', {}, label), el('b', { className: cls || '' }, value));
  }

  function pipeline(panel) {
    const data = frame('pipeline', panel);
    const body = $('.body', card('pipeline'));
    const pill = $('#pill');
    if (!data) return;
    if (data.running && data.status) {
      const s = data.status;
      const p = s.progress;
      const connected = s.state === 'running' && p.connected;
      const held = s.state === 'budget-exhausted' ? holdLabel(s.budget && s.budget.hold) : null;
      pill.textContent = s.state === 'paused' ? 'paused' : held || (connected ? 'connected' : s.state);
      pill.className = `pill ${s.state === 'paused' ? 'warn' : connected ? 'ok' : 'fail'}`;
      body.append(
        el(
          'div',
          { className: 'stats' },
          stat(
            'stream',
            s.state === 'paused'
              ? 'paused'
              : held
                ? `held · ${held}`
                : connected
                  ? 'connected'
                  : `${s.state} · disconnected`,
            connected ? 'ok' : held ? 'fail' : 'warn',
          ),
          stat('reconnects', n(p.reconnects)),
          stat('received', n(p.postsReceived)),
          stat('published', n(p.postsPublished)),
          stat('last post', time(p.lastPostAt)),
        ),
        el(
          'p',
          { className: 'muted' },
          (s.children.loadLanes
            ? `load children (${s.children.loadLanes.length + 1} lanes): ${[
                s.children.load,
                ...s.children.loadLanes,
              ]
                .map((c) => c.state)
                .join(', ')}`
            : `load child: ${s.children.load.state} (${s.children.load.restarts} restarts)`) +
            ` · quality child: ${s.children.quality.state}` +
            ` · rules: ${s.rules.map((r) => r.tag || r.value).join(', ') || 'none'}`,
        ),
        s.lastError || p.lastError
          ? el('p', { className: 'error' }, `last error: ${s.lastError || p.lastError}`)
          : el('p', { className: 'muted' }, 'no errors reported'),
      );
    } else {
      pill.textContent = 'supervisor not running';
      pill.className = 'pill warn';
    }
    body.append(
      el(
        'p',
        { className: 'links' },
        'Temporal: ',
        data.links.map((l) => link(l.url, l.role)),
      ),
    );
  }

  /** What holds the stream in `budget-exhausted`: the read budget or X's usage cap. */
  function holdLabel(hold) {
    return hold && hold.by === 'x-usage-cap' ? 'X usage cap' : 'budget exhausted';
  }

  const usd = new Intl.NumberFormat('en-US', {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  /** A UTC instant as `YYYY-MM-DD HH:MM UTC` (budget months and X's resets are UTC). */
  const utc = (iso) => (iso ? `${iso.slice(0, 16).replace('T', ' ')} UTC` : 'an unknown time');
  /** Local clock time, with the date when it is not today. */
  const when = (iso) => {
    if (!iso) return '–';
    const d = new Date(iso);
    return d.toDateString() === new Date().toDateString()
      ? time(iso)
      : `${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')} ${time(iso)}`;
  };
  const span = (s) => (s === null || s === undefined ? '' : ` (${secs(s)})`);
  /** A stat tile tests and readers can find by name. */
  const tile = (name, label, value, cls) => {
    const t = stat(label, value, cls);
    t.dataset.stat = name;
    return t;
  };

  function readsAndGaps(panel) {
    const data = frame('reads-and-gaps', panel);
    // Neither part reported: the panel's message says so.
    if (!data || (!data.reads && !data.gaps)) return;
    const body = $('.body', card('reads-and-gaps'));
    const r = data.reads;
    const g = data.gaps;

    if (r && r.hold) {
      body.append(
        el(
          'div',
          { className: 'banner hold', role: 'alert', 'data-hold': r.hold.by },
          el(
            'b',
            {},
            r.hold.by === 'x-usage-cap' ? 'X usage cap: stream held' : 'Budget exhausted: stream held',
          ),
          `${r.hold.detail} Held until ${utc(r.hold.until)}.`,
        ),
      );
    }

    body.append(el('h3', {}, 'Posts read from X'));
    if (!r) {
      body.append(el('p', { className: 'empty', 'data-missing': 'reads' }, data.notReported));
    } else {
      const used =
        r.monthlyPosts === null
          ? 'no limit'
          : `${n(r.monthPosts)} of ${n(r.monthlyPosts)} (${Math.round(r.usedPercent)} %)`;
      body.append(
        el(
          'div',
          { className: 'stats' },
          tile('today', `today (${r.day})`, n(r.dayPosts)),
          tile('month', `this month (${r.month})`, n(r.monthPosts)),
          tile('search', 'of which by search', n(r.monthSearchPosts)),
          tile('cost-today', 'est. cost today', usd.format(r.estimatedCostTodayUsd)),
          tile('cost-month', 'est. cost this month', usd.format(r.estimatedCostMonthUsd)),
          tile(
            'budget',
            'budget used',
            used,
            r.level === 'exhausted' ? 'fail' : r.level === 'warn' ? 'warn' : '',
          ),
        ),
        el(
          'p',
          { className: 'note' },
          `Posts read (stream and search) at $${r.costPerPostUsd}` +
            ` per post (X_COST_PER_POST_USD): an upper bound, X does not bill a post read again the same UTC day.` +
            (r.lastCountedDay ? ` Nothing read since ${r.lastCountedDay}.` : '') +
            (r.level === 'warn' ? ' Over 80 % of the monthly budget (X_MONTHLY_POST_BUDGET).' : ''),
        ),
      );
    }

    body.append(el('h3', {}, 'Gaps in the stream'));
    if (!g) {
      body.append(el('p', { className: 'empty', 'data-missing': 'gaps' }, data.notReported));
      return;
    }
    const c = g.counts;
    body.append(
      el(
        'div',
        { className: 'stats' },
        tile('found', 'found', n(c.found)),
        tile('open', 'open', n(c.open), c.open > 0 ? 'warn' : ''),
        tile('pending', 'being filled', n(c.pending)),
        tile('filled', 'filled', n(c.filled), c.filled > 0 ? 'ok' : ''),
        tile('unrecoverable', 'unrecoverable', n(c.unrecoverable), c.unrecoverable > 0 ? 'fail' : ''),
        tile('skipped', 'skipped', n(c.skipped)),
        tile('posts-filled', 'posts filled', n(c.postsFilled)),
      ),
    );
    if (g.open) {
      body.append(
        el(
          'p',
          { className: 'warn', 'data-open-gap': '' },
          `The stream is not delivering: a gap is open since ${when(g.open.start)} (${g.open.reason}).`,
        ),
      );
    }
    if (g.latest.length === 0) {
      body.append(el('p', { className: 'muted' }, 'No gaps recorded.'));
      return;
    }
    body.append(
      el(
        'table',
        { className: 'gaps' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', {}, 'interval'),
            el('th', {}, 'reason'),
            el('th', {}, 'state'),
            el('th', { className: 'n' }, 'posts found'),
            el('th', {}, 'detail'),
          ),
        ),
        el(
          'tbody',
          {},
          g.latest.map((x) =>
            el(
              'tr',
              { title: `${x.id}: ${x.start} → ${x.end}`, 'data-gap': x.id },
              el('td', {}, `${when(x.start)} → ${when(x.end)}${span(x.durationSeconds)}`),
              el('td', {}, x.reason),
              el(
                'td',
                {},
                el(
                  'span',
                  {
                    className: `badge ${x.state === 'filled' ? 'ok' : x.state === 'unrecoverable' ? 'fail' : x.state === 'skipped' ? '' : 'warn'}`,
                  },
                  x.state,
                ),
              ),
              el(
                'td',
                { className: 'n', title: x.endpoint ? `search/${x.endpoint}` : '' },
                x.postsFound === null ? '–' : n(x.postsFound),
              ),
              el(
                'td',
                {},
                x.detail,
                x.unsearchable.length > 0
                  ? el(
                      'ul',
                      { className: 'reasons' },
                      x.unsearchable.map((u) => el('li', {}, `not searchable: ${u.rule} (${u.reason})`)),
                    )
                  : null,
                !x.detail && x.unsearchable.length === 0 ? '–' : null,
              ),
            ),
          ),
        ),
      ),
    );
    if (g.inLedger > g.latest.length) {
      body.append(
        el('p', { className: 'note' }, `The latest ${g.latest.length} of ${g.inLedger} in the ledger.`),
      );
    }
  }

  function lag(panel, summary) {
    const data = frame('ingestion-lag', panel);
    const nowMs = Date.parse(summary.generatedAt);
    const sinceMs = nowMs - (summary.range === 'day' ? 86_400_000 : 3_600_000);
    if (data && data.posts > 0) {
      $('.body', card('ingestion-lag')).append(
        el(
          'div',
          { className: 'stats' },
          stat('average', secs(data.avgSeconds)),
          stat('latest minute', secs(data.latest && data.latest.avgSeconds)),
          stat('max', secs(data.maxSeconds)),
          stat('posts loaded', n(data.posts)),
        ),
      );
    }
    const pts = data ? data.points.filter((p) => p.posts > 0) : [];
    drawChart(
      'lag-chart',
      {
        height: 110,
        legend: { show: false },
        scales: {
          x: { time: true, range: [sinceMs / 1000, nowMs / 1000] },
          y: { range: (u, min, max) => [0, Math.max(1, max * 1.2)] },
        },
        axes: [axisStyle(), { ...axisStyle(), size: 46, values: (u, v) => v.map((s) => `${s}s`) }],
        series: [
          {},
          { label: 'avg lag (s)', stroke: cssVar('--accent'), width: 2, points: { show: true, size: 4 } },
        ],
      },
      [pts.map((p) => Date.parse(p.minute) / 1000), pts.map((p) => p.avgSeconds)],
    );
  }

  function loadRuns(panel) {
    const data = frame('load-runs', panel);
    if (!data) return;
    const b = data.backlog;
    const w = data.window;
    const body = $('.body', card('load-runs'));
    body.append(
      el(
        'div',
        { className: 'stats' },
        stat(
          'last batch',
          b.lastBatchMessages === null ? '–' : `${n(b.lastBatchMessages)} msgs`,
          b.batchFull ? 'warn' : '',
        ),
        stat(
          'backlog',
          b.lastBatchMessages === null ? '–' : b.batchFull ? 'yes (batch full)' : 'none',
          b.batchFull ? 'warn' : 'ok',
        ),
        stat('last load', ago(b.lastRunAgeSeconds)),
        stat('runs in window', n(w.runs)),
        stat('rows loaded', n(w.rowsLoaded)),
      ),
    );
    if (data.items.length === 0) return;
    body.append(
      el(
        'table',
        {},
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', {}, 'started'),
            el('th', { className: 'n' }, 'msgs'),
            el('th', { className: 'n' }, 'loaded'),
            el('th', { className: 'n' }, 'dups'),
            el('th', { className: 'n' }, 'dead'),

            el('th', {}, 'outcome'),
          ),
        ),
        el(
          'tbody',
          {},
          data.items.slice(0, 6).map((r) =>
            el(
              'tr',
              { title: `${r.runId} · ${r.durationMs === null ? '?' : n(r.durationMs)} ms` },
              el('td', {}, time(r.startedAt)),
              el('td', { className: 'n' }, n(r.messages)),
              el('td', { className: 'n' }, n(r.rowsLoaded)),
              el('td', { className: 'n' }, n(r.duplicatesSkipped)),
              el('td', { className: 'n' }, n(r.deadLetters)),

              el(
                'td',
                {},
                el(
                  'span',
                  { className: `badge ${r.outcome === 'loaded' ? 'ok' : 'warn'}` },
                  r.outcome || '?',
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function deadLetters(panel) {
    const data = frame('dead-letters', panel);
    if (!data || data.total === 0) return;
    const body = $('.body', card('dead-letters'));
    body.append(
      el(
        'div',
        { className: 'stats' },
        stat('in window', n(data.total), 'fail'),
        stat('minutes with any', n(data.points.length)),
      ),
    );
    const max = Math.max(...data.byStage.map((s) => s.count));
    body.append(
      el(
        'ol',
        { className: 'bars' },
        data.byStage.map((s) =>
          el(
            'li',
            { style: { '--w': `${(100 * s.count) / max}%` } },
            el('span', {}, s.stage),
            el('span', {}, n(s.count)),
          ),
        ),
      ),
    );
  }

  function quality(panel) {
    const data = frame('quality', panel);
    if (!data || data.latest.length === 0) return;
    const body = $('.body', card('quality'));
    const history = new Map();
    for (const r of data.history) {
      if (!history.has(r.check)) history.set(r.check, []);
      history.get(r.check).push(r);
    }
    body.append(
      el('p', {}, 'overall: ', el('span', { className: `badge ${data.overall}` }, data.overall)),
      el(
        'table',
        {},
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', {}, 'check'),
            el('th', {}, 'latest'),
            el('th', { className: 'n' }, 'observed'),
            el('th', { className: 'n' }, 'threshold'),
            el('th', {}, 'last 24 h'),
          ),
        ),
        el(
          'tbody',
          {},
          data.latest.map((r) =>
            el(
              'tr',
              { title: r.details || '' },
              el('td', {}, r.check),
              el('td', {}, el('span', { className: `badge ${r.status}` }, r.status)),
              el('td', { className: 'n' }, r.observed === null ? '–' : String(r.observed)),
              el('td', { className: 'n' }, r.threshold === null ? '–' : String(r.threshold)),
              el(
                'td',
                {},
                el(
                  'span',
                  { className: 'strip' },
                  (history.get(r.check) || []).map((h) =>
                    el('i', { className: h.status, title: `${time(h.checkedAt)}: ${h.status}` }),
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function topPosts(panel) {
    const data = frame('top-posts', panel);
    if (!data || data.items.length === 0) return;
    $('.body', card('top-posts')).append(
      el(
        'ol',
        { className: 'posts' },
        data.items.map((p) =>
          el(
            'li',
            {},
            el('span', { className: 'text' }, link(p.url, p.text || `post ${p.id}`)),
            el(
              'span',
              { className: 'meta' },
              `${p.author ? '@' + p.author : 'unknown author'} · ${time(p.createdAt)} · ♥ ${n(p.likes)} · ↻ ${n(p.reposts)} · ↩ ${n(p.replies)} · ❝ ${n(p.quotes)} · engagement ${n(p.engagement)}`,
            ),
          ),
        ),
      ),
    );
  }

  function render(summary) {
    last = summary;
    const p = summary.panels;
    $('#stream').textContent = `· ${summary.streamName}`;
    $('#dataset').textContent = summary.dataset;
    postsPerMinute(p['posts-per-minute'], summary);
    pipeline(p.pipeline);
    lag(p['ingestion-lag'], summary);
    loadRuns(p['load-runs']);
    readsAndGaps(p['reads-and-gaps']);
    deadLetters(p['dead-letters']);
    quality(p.quality);
    barList('hashtags', p.hashtags, (k) => `#${k}`);
    barList('mentions', p.mentions, (k) => `@${k}`);
    barList('domains', p.domains, (k) => k);
    barList('languages', p.languages, (k) => k);
    topPosts(p['top-posts']);
    $('#updated').textContent = `updated ${new Date(summary.generatedAt).toLocaleTimeString()}`;
    document.body.dataset.loaded = 'true';
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const res = await fetch(`/api/summary?range=${range}`, { cache: 'no-store' });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      render(await res.json());
      $('#banner').hidden = true;
    } catch (err) {
      const banner = $('#banner');
      banner.textContent = `Cannot refresh the dashboard (${err.message}); retrying in 10 s.`;
      banner.hidden = false;
    }
    timer = setTimeout(tick, REFRESH_MS);
  }

  function tick() {
    if (document.hidden) timer = setTimeout(tick, REFRESH_MS);
    else void refresh();
  }

  for (const b of document.querySelectorAll('.range button')) {
    b.addEventListener('click', () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll('.range button'))
        o.setAttribute('aria-pressed', String(o === b));
      void refresh();
    });
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void refresh();
  });
  // Colours and widths come from CSS: redraw on a colour-scheme change or a resize.
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => last && render(last));
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => last && render(last), 200);
  });
  void refresh();
})();
