// The stateful console: polls /console/stats each second and draws the graph's live numbers,
// the charts, the request log, traces and instance histories. No dependencies.
'use strict';

const token = new URLSearchParams(location.search).get('token');
const auth = token ? { Authorization: 'Bearer ' + token } : {};
const $ = (id) => document.getElementById(id);
const state = { samples: [], lambdas: [], workers: 0, last: 0, logAfter: null, versions: [] };

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...auth, ...(opts.headers || {}) } });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
  if (!r.ok) throw new Error((body && body.error) || r.status + ' ' + r.statusText);
  return body;
}

function showError(e) { $('error').textContent = e ? String(e.message || e) : ''; }

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') e.addEventListener('click', v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmt = (x, d = 0) => (x === null || x === undefined) ? '–' : Number(x).toFixed(d);
const us = (x) => x === null || x === undefined ? '–' : x >= 1000 ? (x / 1000).toFixed(1) + ' ms' : x + ' µs';

// ---- tabs ------------------------------------------------------------------------------
function selectTab(tab) {
  for (const t of document.querySelectorAll('nav [role=tab]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', on);
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (tab.id === 't-charts') drawCharts();
}
for (const t of document.querySelectorAll('nav [role=tab]')) t.addEventListener('click', () => selectTab(t));

// ---- the graph with live numbers -------------------------------------------------------
async function loadGraph() {
  const svg = await api('/graph?format=svg&layout=builtin');
  $('graph').innerHTML = svg;
  for (const g of document.querySelectorAll('#graph g.node[data-kind=lambda]')) {
    const r = g.querySelector('rect');
    const t = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    t.setAttribute('class', 'live');
    t.setAttribute('x', r.getAttribute('x'));
    t.setAttribute('y', Number(r.getAttribute('y')) - 5);
    g.append(t);
  }
  const placed = [];
  for (const g of document.querySelectorAll('#graph g.edge[data-kind=call], #graph g.edge[data-kind=ingress]')) {
    const label = g.querySelector('text');
    if (!label) continue;
    const x = Number(label.getAttribute('x'));
    let y = Number(label.getAttribute('y')) + 12;
    // Edges whose labels meet (arcs over the top to one column) get their numbers stacked.
    while (placed.some(([px, py]) => Math.abs(px - x) < 60 && Math.abs(py - y) < 11)) y += 12;
    placed.push([x, y]);
    const t = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    t.setAttribute('class', 'live');
    t.setAttribute('x', x);
    t.setAttribute('y', y);
    t.setAttribute('text-anchor', 'middle');
    g.append(t);
  }
}

function drawLive(s) {
  const verdict = $('verdict');
  const b = s.bottleneck;
  const where = { idle: 'idle', operators: 'bottleneck: the operators', commit: 'bottleneck: the commit path', contention: 'bottleneck: lock contention', http: 'bottleneck: HTTP or the clients' }[b.kind] || b.kind;
  verdict.className = b.kind;
  verdict.textContent = `${fmt(s.requests_per_s)} req/s · p50 ${fmt(s.latency_p50_ms, 1)} ms · p99 ${fmt(s.latency_p99_ms, 1)} ms · ${where}${b.lambda ? ' (' + b.lambda + ')' : ''} — ${b.why}`;
  for (const g of document.querySelectorAll('#graph g.node[data-kind=lambda]')) {
    const l = s.lambdas.find((x) => x.name === g.dataset.name);
    const t = g.querySelector('text.live');
    g.classList.toggle('hot', b.lambda === g.dataset.name);
    if (l && t) t.textContent = `${fmt(l.invocations_per_s)}/s · p50 ${us(l.p50_us)} · p99 ${us(l.p99_us)}${l.queued ? ' · queue ' + l.queued : ''}`;
  }
  const done = new Set();
  for (const g of document.querySelectorAll('#graph g.edge')) {
    const t = g.querySelector('text.live');
    if (!t) continue;
    const kind = g.dataset.kind;
    const key = kind + g.dataset.from + '>' + g.dataset.to;
    t.textContent = '';
    if ((kind !== 'call' && kind !== 'ingress') || done.has(key)) continue;
    done.add(key);
    const e = s.edges.find((x) => x.from === g.dataset.from && x.to === g.dataset.to);
    if (e) t.textContent = fmt(e.per_s) + '/s';
  }
  drawTables(s);
}

function drawTables(s) {
  const head = el('tr', {}, ...['lambda', 'invocations/s', 'failed/s', 'p50', 'p99', 'busy (workers)', 'queued', 'lock waits/s', 'cache hits'].map((h) => el('th', { scope: 'col' }, h)));
  const rows = s.lambdas.map((l) => el('tr', {},
    el('td', { class: s.bottleneck.lambda === l.name ? 'hot' : '' }, l.name), el('td', {}, fmt(l.invocations_per_s)),
    el('td', {}, fmt(l.failed_per_s)), el('td', {}, us(l.p50_us)), el('td', {}, us(l.p99_us)),
    el('td', {}, fmt(l.busy, 2)), el('td', {}, l.queued), el('td', {}, fmt(l.lock_waits_per_s)),
    el('td', {}, l.cache_hit_rate === null ? '–' : fmt(100 * l.cache_hit_rate, 1) + '%')));
  const commit = el('tr', {}, el('td', {}, 'commit path'), el('td', { colspan: 8 },
    `${fmt(s.commits_per_s)} commits/s · ${fmt(s.commit_ms, 2)} ms each · ${fmt(s.batch, 1)} requests per commit · busy ${fmt(100 * s.commit_busy)}% · in flight ${s.in_flight}`));
  $('lambdas').replaceChildren(head, ...rows, commit);
  const wh = el('tr', {}, el('th', { scope: 'col' }, 'worker'), el('th', { scope: 'col' }, 'busy'),
    ...state.lambdas.map((n) => el('th', { scope: 'col' }, n + ' /s (busy)')));
  const wr = s.workers.map((w) => el('tr', {}, el('td', {}, w.worker), el('td', { class: s.bottleneck.worker === w.worker ? 'hot' : '' }, fmt(100 * w.busy) + '%'),
    ...w.lambdas.map(([n, b]) => el('td', {}, `${fmt(n)} (${fmt(100 * b)}%)`))));
  $('workers').replaceChildren(wh, ...wr);
}
$('per-worker').addEventListener('change', (e) => { $('workers').hidden = !e.target.checked; });

// ---- charts ----------------------------------------------------------------------------
const COLORS = ['#1f6fb4', '#c62828', '#2e7d32', '#a66300', '#6a1b9a'];

function chart(id, title, series, unit) {
  const W = 600, H = 160, P = 30;
  const n = state.samples.length;
  const all = series.flatMap((s) => state.samples.map(s.get)).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...all) * 1.1;
  const t0 = n ? state.samples[0].t_ms : 0, t1 = n ? state.samples[n - 1].t_ms : 1;
  const x = (t) => P + (W - 2 * P) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = (v) => H - P + (-(H - 2 * P) * v) / max;
  let body = `<line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#aaa"/><text x="2" y="${P}" font-size="10">${max.toFixed(max < 10 ? 2 : 0)}</text><text x="2" y="${H - P}" font-size="10">0</text>`;
  if (n) body += `<text x="${W - P}" y="${H - 8}" font-size="10" text-anchor="end">last ${Math.round((t1 - t0) / 1000)} s</text>`;
  const legend = [];
  series.forEach((s, i) => {
    const pts = state.samples.map((p) => [p.t_ms, s.get(p)]).filter(([, v]) => v !== null && v !== undefined).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    body += `<polyline fill="none" stroke="${COLORS[i]}" stroke-width="1.5" points="${pts.join(' ')}"/>`;
    const last = n ? s.get(state.samples[n - 1]) : null;
    legend.push(`<span style="color:${COLORS[i]}">■ ${s.name}: ${fmt(last, 2)} ${unit}</span>`);
  });
  $(id).innerHTML = `<h2>${title}</h2><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${title}">${body}</svg><div class="legend">${legend.join('')}</div>`;
}

function drawCharts() {
  if ($('charts-view').hidden) return;
  chart('c-requests', 'Throughput', [{ name: 'requests admitted', get: (s) => s.requests_per_s }, { name: 'answers 2xx', get: (s) => s.answers_per_s[0] }, { name: 'invocations', get: (s) => s.invocations_per_s }], '/s');
  chart('c-latency', 'Answer latency', [{ name: 'p50', get: (s) => s.latency_p50_ms }, { name: 'p99', get: (s) => s.latency_p99_ms }], 'ms');
  chart('c-commit', 'Commit path', [{ name: 'ms per commit', get: (s) => s.commit_ms }, { name: 'requests per commit', get: (s) => s.batch }], '');
  chart('c-errors', 'Errors by class', [{ name: '400 rejected', get: (s) => s.answers_per_s[1] }, { name: 'other 4xx', get: (s) => s.answers_per_s[2] }, { name: '503', get: (s) => s.answers_per_s[3] }, { name: '5xx', get: (s) => s.answers_per_s[4] }], '/s');
  chart('c-contention', 'Contention', [{ name: 'lock waits', get: (s) => s.lock_waits_per_s }, { name: 'aborts', get: (s) => s.aborts_per_s }, { name: 'rollbacks', get: (s) => s.rollbacks_per_s }], '/s');
}

// ---- polling ---------------------------------------------------------------------------
async function poll() {
  try {
    const st = await api('/console/stats?since=' + state.last);
    if (!state.lambdas.length) setLambdas(st.lambdas);
    state.samples.push(...st.samples);
    if (state.samples.length > 600) state.samples.splice(0, state.samples.length - 600);
    if (st.samples.length) {
      const s = st.samples[st.samples.length - 1];
      state.last = s.t_ms;
      drawLive(s);
      drawCharts();
    }
    drawLoad(await api('/console/load'));
    drawWorkers(await api('/admin/workers'));
    showError(null);
  } catch (e) { showError(e); }
}

function setLambdas(names) {
  state.lambdas = names;
  for (const sel of [$('log-lambda'), $('inst-lambda')]) for (const n of names) sel.append(el('option', {}, n));
}

// ---- load generator --------------------------------------------------------------------
let mixesShown = false;
function drawLoad(l) {
  if (!mixesShown) {
    mixesShown = true;
    $('mix').replaceChildren(...l.mixes.map(([n, about]) => el('option', { value: n, title: about }, `${n} — ${about}`)));
    if (!l.mixes.length) $('mix').append(el('option', { value: '' }, 'this app registers no mix (Service::load_mix)'));
  }
  const r = l.running;
  $('load-status').textContent = r
    ? `${l.phase} ${r.mix} (${r.connections ? r.connections + ' connections' : r.rate + ' sessions/s'}) for ${fmt(l.seconds)} s: ${l.ok} ok, ${l.rejected} rejected, ${l.failed} failed${l.last_error ? ' · last: ' + l.last_error : ''}`
    : 'stopped';
  $('start').disabled = !!r;
  $('stop').disabled = !r;
}
$('start').addEventListener('click', async () => {
  const n = Number($('amount').value);
  const plan = { mix: $('mix').value, [$('shape').value]: n };
  try { drawLoad(await api('/console/load', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(plan) })); showError(null); } catch (e) { showError(e); }
});
$('stop').addEventListener('click', async () => {
  try { await api('/console/load', { method: 'DELETE' }); drawLoad(await api('/console/load')); } catch (e) { showError(e); }
});

// ---- rescaling ------------------------------------------------------------------------
let workersShown = false;
function drawWorkers(w) {
  if (!workersShown) { workersShown = true; $('workers').value = w.workers; }
  const last = w.rescales[w.rescales.length - 1];
  $('workers-status').textContent = `${w.workers} worker(s)` + (last ? ` · last rescale ${last.from} → ${last.workers}, requests held ${fmt(last.paused_ms)} ms${last.reason ? ' (' + last.reason + ')' : ''}` : '');
}
$('rescale').addEventListener('click', async () => {
  $('rescale').disabled = true;
  $('workers-status').textContent = 'rescaling…';
  try {
    await api('/admin/workers', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ workers: Number($('workers').value) }) });
    drawWorkers(await api('/admin/workers'));
    showError(null);
  } catch (e) { showError(e); drawWorkers(await api('/admin/workers')); }
  $('rescale').disabled = false;
});

// ---- request log and traces ------------------------------------------------------------
async function showLog(append) {
  const q = new URLSearchParams({ limit: 50 });
  if ($('log-lambda').value) q.set('lambda', $('log-lambda').value);
  if ($('log-key').value && $('log-lambda').value) q.set('key', $('log-key').value);
  if ($('log-outcome').value) q.set('outcome', $('log-outcome').value);
  if (append && state.logAfter !== null) q.set('after', state.logAfter);
  if (!append && state.logLatest) q.set('last', 'true');
  try {
    const page = await api('/debug/log?' + q);
    const head = el('tr', {}, ...['seq', 'time', 'lambda', 'key', 'handler', 'args', 'outcome'].map((h) => el('th', { scope: 'col' }, h)));
    const rows = page.map((r) => el('tr', {},
      el('td', {}, el('button', { type: 'button', 'aria-label': 'trace of request ' + r.seq, onclick: () => showTrace(r.seq) }, r.seq)),
      el('td', {}, r.time), el('td', {}, r.lambda), el('td', {}, JSON.stringify(r.key)), el('td', {}, r.handler),
      el('td', {}, JSON.stringify(r.args)), el('td', { class: 'outcome-' + r.outcome }, r.outcome)));
    if (append) $('log').append(...rows); else $('log').replaceChildren(head, ...rows);
    if (page.length) state.logAfter = page[page.length - 1].seq;
    $('log-more').hidden = page.length < 50;
    showError(null);
  } catch (e) { showError(e); }
}
$('log-filter').addEventListener('submit', (e) => { e.preventDefault(); state.logLatest = false; state.logAfter = null; showLog(false); });
$('log-latest').addEventListener('click', () => { state.logLatest = true; state.logAfter = null; showLog(false); });
$('log-more').addEventListener('click', () => { state.logLatest = false; showLog(true); });
$('t-requests').addEventListener('click', () => { if (!$('log').children.length) showLog(false); });

function traceNode(n) {
  const j = (v) => JSON.stringify(v);
  const li = el('li', {}, el('code', {}, `${n.lambda}[${j(n.key)}].${n.handler}(${j(n.args).slice(1, -1)})`), ` → ${j(n.result)} · ${n.micros} µs`);
  if (n.rolled_back_blocks) li.append(el('strong', {}, ` · ${n.rolled_back_blocks} block(s) rolled back`));
  li.append(el('details', {}, el('summary', {}, 'state before → after'), el('pre', {}, `${j(n.state_before)}\n→ ${j(n.state_after)}`)));
  if (n.calls.length) li.append(el('ul', {}, ...n.calls.map(traceNode)));
  return li;
}

async function showTrace(seq) {
  try {
    const t = await api('/debug/trace/' + seq);
    $('trace').replaceChildren(el('h2', {}, `Request ${t.request}: ${t.ok ? 'committed' : 'failed'} in epoch ${t.epoch} (${t.time}), ${t.attempts} attempt(s)`), el('ul', {}, traceNode(t.root)));
    $('trace').scrollIntoView();
    showError(null);
  } catch (e) { showError(e); }
}

// ---- instance history ------------------------------------------------------------------
function showVersion(i) {
  const v = state.versions[i];
  if (!v) return;
  const by = v.written_by.map((w) => `#${w.seq}`).join(', ') || 'no request (an earlier checkpoint)';
  $('version').textContent = `${i + 1} of ${state.versions.length}: epoch ${v.epoch} (${v.time}), written by ${by}`;
  $('state').textContent = JSON.stringify(v.state, null, 2);
}
$('inst-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const h = await api(`/debug/history/${encodeURIComponent($('inst-lambda').value)}/${encodeURIComponent($('inst-key').value)}`);
    state.versions = h.versions;
    const s = $('slider');
    s.max = Math.max(0, h.versions.length - 1);
    s.value = s.max;
    $('history').hidden = false;
    if (!h.versions.length) { $('version').textContent = 'no versions: this instance was never written'; $('state').textContent = ''; }
    showVersion(Number(s.value));
    showError(null);
  } catch (err) { showError(err); }
});
$('slider').addEventListener('input', (e) => showVersion(Number(e.target.value)));

loadGraph().catch(showError).then(poll);
setInterval(poll, 1000);
