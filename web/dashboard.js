// noema operator dashboard: reads GET /v1/analytics/... with the admin token and draws
// every chart as inline SVG. No libraries, nothing fetched from anywhere but this server.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'noema.adminToken';
  const PALETTE = ['#3b5bdb', '#f08c00', '#2f9e44', '#c92a2a', '#7048e8', '#1098ad',
                   '#e64980', '#868e96', '#5c940d', '#d9480f'];
  const OUTCOME_COLORS = {succeeded: '#2f9e44', failed: '#c92a2a', timedOut: '#f08c00',
                          cancelled: '#868e96'};

  // ---- token: URL fragment (#token=...) or the form; kept in sessionStorage ----------
  function takeTokenFromFragment() {
    const hash = window.location.hash.replace(/^#/, '');
    if (!hash) return;
    const params = new URLSearchParams(hash);
    const token = params.get('token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      // Do not leave the secret in the address bar or the history.
      history.replaceState(null, '', window.location.pathname + window.location.search);
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  // ---- small DOM and SVG helpers -----------------------------------------------------
  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function html(name, className, text) {
    const node = document.createElement(name);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function svgRoot(width, height) {
    return el('svg', {viewBox: `0 0 ${width} ${height}`, role: 'img',
                      preserveAspectRatio: 'xMidYMid meet'});
  }
  function title(node, text) { node.appendChild(el('title', {}, text)); return node; }
  function legend(items) {
    const box = html('div', 'legend');
    for (const [label, color] of items) {
      const item = html('span');
      const swatch = el('svg', {width: 10, height: 10, viewBox: '0 0 10 10'});
      swatch.appendChild(el('rect', {width: 10, height: 10, rx: 2, fill: color}));
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(' ' + label));
      box.appendChild(item);
    }
    return box;
  }
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
    return 10 * p;
  }
  function fmt(n) { return Number(n).toLocaleString('en-US'); }
  function pct(r) { return (Number(r) * 100).toFixed(1) + '%'; }
  function ms(v) {
    v = Number(v);
    if (!Number.isFinite(v)) return '–';
    if (v >= 3600000) return (v / 3600000).toFixed(1) + ' h';
    if (v >= 60000) return (v / 60000).toFixed(1) + ' min';
    return (v / 1000).toFixed(1) + ' s';
  }
  function message(container, text, isError) {
    container.replaceChildren(html('div', isError ? 'message error' : 'message', text));
  }

  // Axes for a chart over `days` (x) and [0, max] (y); returns the scales.
  // A horizontal bar per row: its label right-aligned on the left, the bar scaled to the
  // largest n, the figure on the right (the archetype mix, the exp buckets, the commands).
  function barRows(rows, {labelWidth, rowH, barH}) {
    const W = 460, H = rows.length * rowH + 8;
    const svg = svgRoot(W, H);
    const max = Math.max(1, ...rows.map((r) => r.n));
    const x = labelWidth + 8, span = W - x - 72;
    rows.forEach((r, i) => {
      const y = 4 + i * rowH, textY = y + barH - 2;
      svg.appendChild(el('text', {x: labelWidth, y: textY, 'text-anchor': 'end', class: 'value'},
                         r.label));
      svg.appendChild(title(el('rect', {class: 'mark', x, y: y + 3,
                                        width: Math.max(r.n ? 2 : 0, (span * r.n) / max),
                                        height: barH, rx: 2, fill: r.color}),
                            r.tip));
      svg.appendChild(el('text', {x: W - 8, y: textY, 'text-anchor': 'end'}, r.right));
    });
    return svg;
  }

  function frame(svg, width, height, days, max, pad) {
    const x0 = pad.left, x1 = width - pad.right, y0 = height - pad.bottom, y1 = pad.top;
    const y = (v) => y0 - (v / max) * (y0 - y1);
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      svg.appendChild(el('line', {class: 'axis', x1: x0, x2: x1, y1: y(v), y2: y(v)}));
      svg.appendChild(el('text', {x: x0 - 6, y: y(v) + 4, 'text-anchor': 'end'}, fmt(v)));
    }
    const step = Math.max(1, Math.ceil(days.length / 8));
    const band = (x1 - x0) / Math.max(1, days.length);
    days.forEach((d, i) => {
      if (i % step !== 0) return;
      svg.appendChild(el('text', {x: x0 + band * (i + 0.5), y: y0 + 14, 'text-anchor': 'middle'},
                         d.slice(5)));
    });
    return {x0, x1, y0, y1, y, band};
  }

  // ---- charts ------------------------------------------------------------------------
  const charts = {
    'active-users': {
      path: '/v1/analytics/active-users',
      draw(container, body) {
        const days = body.days || [];
        if (!days.length) return message(container, 'No days in the range.');
        const W = 900, H = 260;
        const svg = svgRoot(W, H);
        const max = niceMax(Math.max(...days.map((d) => Math.max(d.dau, d.wau, d.mau))));
        const f = frame(svg, W, H, days.map((d) => d.day), max,
                        {left: 48, right: 12, top: 10, bottom: 24});
        const series = [['MAU', 'mau', PALETTE[2]], ['WAU', 'wau', PALETTE[1]],
                        ['DAU', 'dau', PALETTE[0]]];
        for (const [label, key, color] of series) {
          const points = days.map((d, i) => `${(f.x0 + f.band * (i + 0.5)).toFixed(1)},` +
                                           `${f.y(d[key]).toFixed(1)}`);
          svg.appendChild(title(el('polyline', {class: 'mark', points: points.join(' '),
                                                fill: 'none', stroke: color,
                                                'stroke-width': 2}), label));
        }
        days.forEach((d, i) => {
          svg.appendChild(title(el('circle', {class: 'mark', cx: f.x0 + f.band * (i + 0.5),
                                              cy: f.y(d.dau), r: 2.5, fill: PALETTE[0]}),
                                `${d.day}: DAU ${d.dau}, WAU ${d.wau}, MAU ${d.mau}` +
                                platformText(d.dauByPlatform)));
        });
        container.replaceChildren(svg, legend(series.map(([l, , c]) => [l, c]).reverse()));
      },
    },
    events: {
      path: '/v1/analytics/events',
      draw(container, body) {
        const days = body.days || [];
        if (!days.length || days.every((d) => !d.total)) {
          return message(container, 'No events in the range.');
        }
        // The 7 most frequent types; the rest is "other".
        const totals = {};
        for (const d of days) for (const [t, n] of Object.entries(d.byType || {})) {
          totals[t] = (totals[t] || 0) + n;
        }
        const top = Object.keys(totals).sort((a, b) => totals[b] - totals[a]).slice(0, 7);
        const keys = top.concat(Object.keys(totals).length > top.length ? ['other'] : []);
        const W = 900, H = 260;
        const svg = svgRoot(W, H);
        const max = niceMax(Math.max(...days.map((d) => d.total)));
        const f = frame(svg, W, H, days.map((d) => d.day), max,
                        {left: 56, right: 12, top: 10, bottom: 24});
        days.forEach((d, i) => {
          let base = 0;
          keys.forEach((k, j) => {
            const n = k === 'other'
              ? Object.entries(d.byType || {}).filter(([t]) => !top.includes(t))
                  .reduce((s, [, v]) => s + v, 0)
              : (d.byType || {})[k] || 0;
            if (!n) return;
            const yTop = f.y(base + n), yBase = f.y(base);
            svg.appendChild(title(el('rect', {class: 'mark', x: f.x0 + f.band * i + f.band * 0.1,
                                              y: yTop, width: Math.max(1, f.band * 0.8),
                                              height: Math.max(0.5, yBase - yTop),
                                              fill: PALETTE[j % PALETTE.length]}),
                                  `${d.day} ${k}: ${fmt(n)}`));
            base += n;
          });
        });
        container.replaceChildren(svg, legend(keys.map((k, j) => [k, PALETTE[j % PALETTE.length]])));
      },
    },
    funnel: {
      path: '/v1/analytics/funnel',
      draw(container, body) {
        const steps = body.steps || [];
        if (!steps.length) return message(container, 'No funnel steps.');
        const W = 460, rowH = 46, H = steps.length * rowH + 8;
        const svg = svgRoot(W, H);
        const max = Math.max(1, ...steps.map((s) => s.count));
        steps.forEach((s, i) => {
          const y = 4 + i * rowH;
          const width = Math.max(2, ((W - 16) * s.count) / max);
          svg.appendChild(el('text', {x: 8, y: y + 12, class: 'value'}, s.eventType));
          svg.appendChild(title(el('rect', {class: 'mark', x: 8, y: y + 18, width,
                                            height: 20, rx: 3, fill: PALETTE[0]}),
                                `${s.eventType}: ${fmt(s.count)} users`));
          svg.appendChild(el('text', {x: W - 8, y: y + 12, 'text-anchor': 'end'},
                             `${fmt(s.count)} users` +
                             (i > 0 ? ` · ${pct(s.conversion)} of previous` : '')));
        });
        container.replaceChildren(svg);
      },
    },
    generations: {
      path: '/v1/analytics/generations',
      draw(container, body) {
        const services = body.services || [];
        if (!services.length) return message(container, 'No generations in the range.');
        const W = 460, rowH = 52, H = services.length * rowH + 8;
        const svg = svgRoot(W, H);
        const max = Math.max(1, ...services.map((s) => s.total));
        const parts = ['succeeded', 'failed', 'timedOut', 'cancelled'];
        services.forEach((s, i) => {
          const y = 4 + i * rowH;
          svg.appendChild(el('text', {x: 8, y: y + 12, class: 'value'}, s.serviceName));
          svg.appendChild(el('text', {x: W - 8, y: y + 12, 'text-anchor': 'end'},
                             `${fmt(s.total)} · ${pct(s.successRate)} ok · $${s.costUsd} · ` +
                             `p50 ${ms((s.durationMs || {}).p50)} / p95 ${ms((s.durationMs || {}).p95)}`));
          let x = 8;
          for (const p of parts) {
            const n = s[p] || 0;
            if (!n) continue;
            const width = ((W - 16) * n) / max;
            svg.appendChild(title(el('rect', {class: 'mark', x, y: y + 18,
                                              width: Math.max(1, width), height: 22,
                                              fill: OUTCOME_COLORS[p]}),
                                  `${s.serviceName} ${p}: ${fmt(n)}`));
            x += width;
          }
        });
        container.replaceChildren(svg, legend(parts.map((p) => [p, OUTCOME_COLORS[p]])));
      },
    },
    retention: {
      path: '/v1/analytics/retention?weeks=8',
      draw(container, body) {
        const cohorts = body.cohorts || [];
        if (!cohorts.length) return message(container, 'No cohorts.');
        const weeks = Math.max(1, ...cohorts.map((c) => (c.rates || []).length));
        const cellW = 40, cellH = 22, left = 110, top = 20;
        const W = left + weeks * cellW + 8, H = top + cohorts.length * cellH + 4;
        const svg = svgRoot(W, H);
        for (let k = 0; k < weeks; k++) {
          svg.appendChild(el('text', {x: left + k * cellW + cellW / 2, y: 14,
                                      'text-anchor': 'middle'}, `w${k}`));
        }
        cohorts.forEach((c, i) => {
          const y = top + i * cellH;
          svg.appendChild(el('text', {x: 8, y: y + 15}, `${c.weekStart} (${c.size})`));
          (c.rates || []).forEach((r, k) => {
            const x = left + k * cellW;
            const shade = Math.round(245 - 180 * Math.min(1, Math.max(0, r)));
            svg.appendChild(title(el('rect', {class: 'mark', x: x + 1, y: y + 1,
                                              width: cellW - 2, height: cellH - 2, rx: 2,
                                              fill: `rgb(${shade},${shade + 5 > 255 ? 255 : shade + 5},255)`}),
                                  `${c.weekStart} week ${k}: ${(c.retained || [])[k]} of ${c.size} (${pct(r)})`));
            svg.appendChild(el('text', {x: x + cellW / 2, y: y + 15, 'text-anchor': 'middle',
                                        class: r > 0.6 ? 'on-dark' : 'value'},
                               Math.round(r * 100)));
          });
        });
        container.replaceChildren(svg);
      },
    },
    archetypes: {
      path: '/v1/analytics/archetypes',
      draw(container, body) {
        const mix = Object.entries(body.mix || {});
        const total = mix.reduce((s, [, n]) => s + n, 0);
        if (!total) return message(container, 'No active users in the range.');
        container.replaceChildren(barRows(mix.map(([name, n], i) => ({
          label: name, n, color: PALETTE[i % PALETTE.length], tip: `${name}: ${n} users`,
          right: `${fmt(n)} · ${pct(n / total)}`,
        })), {labelWidth: 120, rowH: 26, barH: 18}));
      },
    },
    exp: {
      // Every user's exp now: not over the range (GET /v1/analytics/exp takes none).
      path: '/v1/analytics/exp',
      ranged: false,
      draw(container, body) {
        if (!body.users) return message(container, 'No users yet.');
        container.replaceChildren(barRows((body.buckets || []).map((b) => {
          const label = b.from === b.to ? fmt(b.from) : `${fmt(b.from)}–${fmt(b.to)}`;
          return {label, n: b.users, color: PALETTE[3], tip: `exp ${label}: ${fmt(b.users)} users`,
                  right: `${fmt(b.users)} · ${pct(b.users / body.users)}`};
        }), {labelWidth: 120, rowH: 22, barH: 16}));
      },
    },
    commands: {
      path: '/v1/analytics/commands?limit=10',
      draw(container, body) {
        const commands = body.commands || [];
        if (!commands.length) return message(container, 'No commands in the range.');
        container.replaceChildren(barRows(commands.map((c) => ({
          label: c.commandName, n: c.count, color: PALETTE[5],
          tip: `${c.commandName}: ${fmt(c.count)}`, right: fmt(c.count),
        })), {labelWidth: 90, rowH: 24, barH: 16}));
      },
    },
    credit: {
      path: '/v1/analytics/credit',
      draw(container, body) {
        const days = body.days || [];
        if (!days.length) return message(container, 'No days in the range.');
        const W = 460, H = 220;
        const svg = svgRoot(W, H);
        const added = days.map((d) => Number(d.addedUsd));
        const spent = days.map((d) => Number(d.spentUsd));
        const max = niceMax(Math.max(...added, ...spent));
        const f = frame(svg, W, H, days.map((d) => d.day), max,
                        {left: 48, right: 8, top: 10, bottom: 24});
        days.forEach((d, i) => {
          const w = Math.max(1, f.band * 0.4);
          const x = f.x0 + f.band * i + f.band * 0.1;
          svg.appendChild(title(el('rect', {class: 'mark', x, y: f.y(added[i]), width: w,
                                            height: f.y0 - f.y(added[i]), fill: PALETTE[2]}),
                                `${d.day} added $${d.addedUsd}`));
          svg.appendChild(title(el('rect', {class: 'mark', x: x + w, y: f.y(spent[i]), width: w,
                                            height: f.y0 - f.y(spent[i]), fill: PALETTE[3]}),
                                `${d.day} spent $${d.spentUsd}`));
        });
        container.replaceChildren(svg, legend([['added', PALETTE[2]], ['spent', PALETTE[3]]]));
      },
    },
  };

  function platformText(byPlatform) {
    const parts = Object.entries(byPlatform || {}).map(([p, n]) => `${p} ${n}`);
    return parts.length ? ` (${parts.join(', ')})` : '';
  }

  // ---- loading -----------------------------------------------------------------------
  function range() {
    const params = new URLSearchParams();
    const from = document.getElementById('from').value;
    const to = document.getElementById('to').value;
    if (from) params.set('from', from);
    if (to) params.set('to', to);
    return params;
  }
  function withRange(path, params) {
    const query = params.toString();
    if (!query) return path;
    return path + (path.includes('?') ? '&' : '?') + query;
  }

  // Resolves to the parsed body, or rejects with a message for the chart.
  async function getJson(path) {
    let reply;
    try {
      reply = await fetch(path, {headers: {Authorization: 'Bearer ' + token(),
                                           Accept: 'application/json'},
                                 cache: 'no-store'});
    } catch (e) {
      throw new Error('the server did not answer (' + e.message + ')');
    }
    let body = null;
    try { body = await reply.json(); } catch (e) { body = null; }
    if (!reply.ok) {
      const err = body && body.error ? body.error : null;
      throw new Error(`HTTP ${reply.status}` + (err ? `: ${err.code}: ${err.message}` +
                                                (err.field ? ` (${err.field})` : '') : ''));
    }
    if (body === null) throw new Error('the reply is not JSON');
    return body;
  }

  async function loadKpis(params) {
    const box = document.getElementById('kpis');
    const tiles = [];
    const add = (value, label) => {
      const tile = html('div', 'kpi');
      tile.appendChild(html('b', '', value));
      tile.appendChild(html('span', '', label));
      tiles.push(tile);
    };
    try {
      const [sessions, accounts] = await Promise.all([
        getJson(withRange('/v1/analytics/sessions', params)),
        getJson(withRange('/v1/analytics/new-accounts', params))]);
      add(fmt(sessions.users), 'active users');
      add(fmt(sessions.sessions), 'sessions');
      const perUser = sessions.sessionsPerUser || {};
      const duration = sessions.durationMs || {};
      add(Number(perUser.mean || 0).toFixed(1), 'sessions per user');
      add(ms(duration.p50) + ' / ' + ms(duration.p90),
          'session length p50 / p90');
      add(fmt((accounts.days || []).reduce((s, d) => s + d.total, 0)), 'new accounts');
      box.replaceChildren(...tiles);
    } catch (e) {
      box.replaceChildren(html('div', 'kpi', 'Totals unavailable: ' + e.message));
    }
  }

  async function loadAll() {
    const status = document.getElementById('status');
    if (!token()) {
      status.className = '';
      status.textContent = 'Enter the admin token (or open the URL that `noema serve` printed).';
      for (const section of document.querySelectorAll('[data-chart] .chart')) {
        message(section, 'Waiting for the admin token.');
      }
      return;
    }
    status.className = '';
    status.textContent = 'Loading…';
    const params = range();
    const jobs = [loadKpis(params)];
    let failures = 0;
    for (const [name, chart] of Object.entries(charts)) {
      const container = document.querySelector(`[data-chart="${name}"] .chart`);
      message(container, 'Loading…');
      container.parentElement.dataset.state = 'loading';
      const path = chart.ranged === false ? chart.path : withRange(chart.path, params);
      jobs.push(getJson(path).then((body) => {
        chart.draw(container, body);
        container.parentElement.dataset.state = 'ready';
      }).catch((e) => {
        failures++;
        message(container, 'Could not load: ' + e.message, true);
        container.parentElement.dataset.state = 'error';
      }));
    }
    await Promise.all(jobs);
    status.className = failures ? 'error' : '';
    status.textContent = failures ? `${failures} chart(s) could not be loaded.`
                                  : `Updated ${new Date().toISOString().slice(0, 19)}Z`;
    document.body.dataset.loaded = 'true';
  }

  document.addEventListener('DOMContentLoaded', () => {
    takeTokenFromFragment();
    const form = document.getElementById('controls');
    const input = document.getElementById('token');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      loadAll();
    });
    document.getElementById('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      loadAll();
    });
    window.addEventListener('hashchange', () => {
      takeTokenFromFragment();
      loadAll();
    });
    loadAll();
  });
})();
