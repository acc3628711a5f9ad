// meshtel console page: plain ES module, no build step. cytoscape and cytoscape-dagre are loaded by index.html
// from this package (window.cytoscape, window.cytoscapeDagre).
const $ = (id) => document.getElementById(id);
const COLORS = { ok: '#1a7f37', warn: '#9a6700', bad: '#cf222e', idle: '#6e7781' };
const state = { config: null, graph: null, selected: null, timer: null, tap: null, laidOut: '' };

window.cytoscape.use(window.cytoscapeDagre);
const cy = window.cytoscape({
  container: $('graph'),
  wheelSensitivity: 0.3,
  style: [
    { selector: 'node', style: { label: 'data(label)', 'text-valign': 'bottom', 'text-margin-y': 4, 'font-size': 11, color: '#1f2328', 'background-color': 'data(color)', width: 26, height: 26, 'text-wrap': 'wrap' } },
    // Kiali's shapes: a workload is a circle, a service a triangle.
    { selector: 'node.service', style: { shape: 'round-triangle', width: 30, height: 28 } },
    { selector: 'node.unknown', style: { shape: 'diamond', 'background-color': '#fff', 'border-width': 2, 'border-color': COLORS.idle } },
    { selector: ':parent', style: { label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'background-color': '#f6f8fa', 'border-color': '#d1d9e0', 'border-width': 1, 'font-size': 12, 'font-weight': 'bold', color: '#59636e', padding: 14 } },
    { selector: 'edge', style: { label: 'data(label)', 'font-size': 10, 'text-wrap': 'wrap', 'line-height': 1.25, 'text-background-color': '#fff', 'text-background-opacity': 0.9, 'text-background-padding': 2, color: '#1f2328', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', width: 'data(width)', 'line-color': 'data(color)', 'target-arrow-color': 'data(color)', 'text-rotation': 'none' } },
    // Labels sit at one end of their edge, never at the midpoint: the labels of a fan-out (or fan-in) would stack
    // there. At the target, above it (node names are below nodes), unless several edges meet at the target and the
    // source has only this one: then below the source. Each gap between ranks then holds one label.
    { selector: 'edge.at-target', style: { label: '', 'target-label': 'data(label)', 'target-text-offset': 32 } },
    { selector: 'edge.at-source', style: { label: '', 'source-label': 'data(label)', 'source-text-offset': 46 } },
    { selector: 'edge.bad', style: { 'line-style': 'dashed', 'line-dash-pattern': [6, 3], color: '#cf222e', 'font-weight': 'bold' } },
    { selector: ':selected', style: { 'overlay-color': '#0969da', 'overlay-opacity': 0.15, 'overlay-padding': 6 } },
  ],
});
window.__meshtel = { cy, state };

const pct = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`);
const ms = (x) => (x === null || x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)}s` : `${x.toFixed(x < 10 ? 1 : 0)}ms`);
const rate = (x) => `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}/s`;
const bytes = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)} MB/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} kB/s` : `${x.toFixed(0)} B/s`);
// The mTLS lock is an inline SVG, not the 🔒 emoji: a system without an emoji font (Debian's chromium) draws a box.
const LOCK_SVG = '<svg class="lock" viewBox="0 0 12 14" width="10" height="12" aria-hidden="true"><path d="M3 6V4a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.6"/><rect x="1" y="6" width="10" height="7.5" rx="1.2" fill="currentColor"/></svg>';
const warmingUp = () => state.config?.warmUpUntil !== undefined && Date.now() < state.config.warmUpUntil;
// Node ids are `ns/workload` or `svc:ns/service` (src/console/graph.ts): say which in headings.
const nodeLabel = (id) => (id.startsWith('svc:') ? `service ${id.slice(4)}` : id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

// Canvas labels cannot hold an SVG: mTLS edges get an overlaid lock (placeLocks) left of their label.
function edgeLabel(e) {
  if (e.protocol === 'tcp') return `TCP ${bytes(e.bytesPerSecond)}`;
  // ⚠ (U+26A0) is in DejaVu Sans, which Debian's fontconfig always installs, and in every desktop system font.
  const err = e.errorShare ? ` · ${e.health === 'bad' ? '⚠ ' : ''}${pct(e.errorShare)} err` : '';
  const latency = warmingUp() ? 'latency: warming up' : `p50 ${ms(e.p50)} p99 ${ms(e.p99)}`;
  return `${e.protocol.toUpperCase()} ${rate(e.rps)}${err}\n${latency}`;
}

let locksQueued = false;
function placeLocks() {
  if (locksQueued) return;
  locksQueued = true;
  requestAnimationFrame(() => {
    locksQueued = false;
    const box = { includeNodes: false, includeEdges: false, includeLabels: true, includeMainLabels: true, includeSourceLabels: true, includeTargetLabels: true, includeOverlays: false };
    $('locks').innerHTML = cy
      .edges()
      .filter((e) => e.data('mtls') && e.visible())
      .map((e) => {
        const b = e.renderedBoundingBox(box);
        return `<span class="edge-lock" data-edge="${esc(e.id())}" style="left:${(b.x1 - 13).toFixed(0)}px;top:${(b.y1 + 1).toFixed(0)}px" title="mutual TLS">${LOCK_SVG}</span>`;
      })
      .join('');
  });
}
cy.on('render', placeLocks);

function renderGraph(g) {
  const outdegree = new Map();
  const indegree = new Map();
  for (const e of g.edges) {
    outdegree.set(e.source, (outdegree.get(e.source) ?? 0) + 1);
    indegree.set(e.target, (indegree.get(e.target) ?? 0) + 1);
  }
  const namespaces = [...new Set(g.nodes.map((n) => n.namespace))];
  const els = [
    ...namespaces.map((ns) => ({ group: 'nodes', data: { id: `ns:${ns}`, label: `namespace ${ns}` } })),
    ...g.nodes.map((n) => {
      const unknown = n.kind === 'workload' && n.name === 'unknown';
      const why = n.unknownPeers.length ? `\nunknown peers: ${n.unknownPeers.map((u) => `${u.reason} ${rate(u.rate)}`).join(', ')}` : '';
      return {
        group: 'nodes',
        classes: unknown ? 'unknown' : `${n.kind} ${n.health}`,
        data: { id: n.id, parent: `ns:${n.namespace}`, label: `${unknown ? 'unknown peer' : n.name}${why}`, color: COLORS[n.health], health: n.health, kind: n.kind },
      };
    }),
    ...g.edges.map((e) => ({
      group: 'edges',
      classes: `${e.health} ${(indegree.get(e.target) ?? 0) > 1 && (outdegree.get(e.source) ?? 0) === 1 ? 'at-source' : 'at-target'}`,
      data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), color: COLORS[e.health], width: Math.min(6, 1.5 + Math.log10(1 + e.rps + e.bytesPerSecond / 1000)), health: e.health, errorShare: e.errorShare, rps: e.rps, mtls: e.mtls, protocol: e.protocol },
    })),
  ];
  const shape = els.map((x) => x.data.id).sort().join(',');
  if (shape !== state.laidOut) {
    cy.elements().remove();
    cy.add(els);
    // Top to bottom: with service nodes a request path has twice the ranks (the demo: nine), too wide for the graph
    // pane left to right. Ranks leave room for a two-line edge label between them, callees are wider apart than a
    // label so the labels of a fan-out (at the edges' midpoints) do not overlap.
    cy.layout({ name: 'dagre', rankDir: 'TB', nodeSep: 140, rankSep: 60, edgeSep: 20, fit: true, padding: 28 }).run();
    // Never zoom in past natural size on a small mesh (labels would be huge), never out so far they cannot be read.
    if (cy.zoom() > 1.2) cy.zoom({ level: 1.2, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
    state.laidOut = shape;
  } else {
    for (const x of els) {
      const el = cy.getElementById(x.data.id);
      el.data(x.data);
      el.classes(x.classes ?? '');
    }
  }
}

async function getJson(url) {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

async function refresh() {
  try {
    const g = await getJson('/api/graph');
    if (g.warmingUp) {
      $('status').textContent = 'warming up: waiting for a second scrape…';
    } else {
      state.graph = g;
      renderGraph(g);
      const bad = g.edges.filter((e) => e.health === 'bad').length;
      const warm = warmingUp() ? ` · warming up (${Math.ceil((state.config.warmUpUntil - Date.now()) / 1000)}s): latencies include start-up` : '';
      $('status').textContent = `${g.edges.length} edges, ${bad} unhealthy · rates over ${g.windowSeconds.toFixed(0)}s · ${new Date(g.time).toLocaleTimeString()}${warm}`;
    }
    if (state.selected) await showDetail(state.selected);
    if (!$('panel-self').hidden) await showSelf();
  } catch (err) {
    $('status').textContent = `error: ${err.message}`;
  }
}

function schedule() {
  clearInterval(state.timer);
  const every = Number($('refresh').value);
  if (every > 0) state.timer = setInterval(refresh, every);
}

function chart(title, points, series, fmt) {
  const W = 300;
  const H = 90;
  const P = 4;
  const at = (p, s) => (s.get ? s.get(p) : p[s.key]);
  const vals = points.flatMap((p) => series.map((s) => at(p, s))).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const max = Math.max(...vals, 0) || 1;
  const t0 = points[0]?.t ?? 0;
  const t1 = points[points.length - 1]?.t ?? 1;
  const x = (t) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v) => H - P - (v / max) * (H - 2 * P - 12);
  const lines = series
    .map((s) => {
      let d = '';
      let pen = false;
      for (const p of points) {
        const v = at(p, s);
        if (v === null || v === undefined || !Number.isFinite(v)) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`;
    })
    .join('');
  const legend = series.map((s, i) => `<text x="${P + i * 46}" y="10" style="fill:${s.color}">${esc(s.name)}</text>`).join('');
  const last = points[points.length - 1];
  const now = series.length === 0 ? 'none in this range' : series.map((s) => `${s.name} ${last ? fmt(at(last, s) ?? 0) : '–'}`).join(' · ');
  return `<h3>${esc(title)}</h3><svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(`${title}: ${now}`)}">${legend}<text x="${W - P}" y="10" text-anchor="end">max ${esc(fmt(max))}</text>${lines}</svg><div class="muted">${esc(now)}</div>`;
}

// Response codes by class (2xx green … 5xx red, 0 = no response grey); flags in a fixed, colour-blind-safe order.
const codeColor = (c) => ({ 2: '#1a7f37', 3: '#0969da', 4: '#9a6700', 5: '#cf222e' })[c[0]] ?? '#6e7781';
const FLAG_COLORS = ['#cf222e', '#8250df', '#0969da', '#9a6700', '#6e7781', '#1a7f37'];
const keysOf = (points, field) => [...new Set(points.flatMap((p) => Object.keys(p[field] ?? {})))].sort();

function side(title, points, protocol) {
  if (points.length === 0) return `<div><h2>${esc(title)}</h2><p class="muted">no data yet</p></div>`;
  const fmtRate = (v) => (v === null ? '–' : rate(v));
  const charts = [];
  const http = protocol !== 'tcp' && points.some((p) => p.rps > 0);
  if (http) {
    charts.push(
      chart('requests', points, [{ key: 'rps', name: 'req/s', color: '#0969da' }], fmtRate),
      chart('errors (5xx share)', points, [{ key: 'errorShare', name: '5xx', color: COLORS.bad }], pct),
      chart('requests by response code', points, keysOf(points, 'codes').map((c) => ({ name: c, color: codeColor(c), get: (p) => p.codes?.[c] ?? 0 })), fmtRate),
      chart('requests by response flag', points, keysOf(points, 'flags').map((f, i) => ({ name: f, color: FLAG_COLORS[i % FLAG_COLORS.length], get: (p) => p.flags?.[f] ?? 0 })), fmtRate),
      chart('latency', points, [{ key: 'p50', name: 'p50', color: '#0969da' }, { key: 'p99', name: 'p99', color: '#8250df' }], ms),
    );
  }
  if (protocol === 'tcp' || points.some((p) => p.bytesPerSecond > 0)) {
    charts.push(chart('TCP bytes', points, [{ key: 'bytesPerSecond', name: 'bytes', color: '#1a7f37' }], (v) => (v === null ? '–' : bytes(v))));
  }
  return `<div class="side"><h2>${esc(title)}</h2>${charts.join('') || '<p class="muted">no traffic in this range</p>'}</div>`;
}

/** `500 1.3/s · 200 5.3/s`, largest first. */
const breakdown = (m) => Object.entries(m ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${esc(k)} ${rate(v)}`).join(' · ');

async function showDetail(id) {
  const d = await getJson(`/api/detail?id=${encodeURIComponent(id)}&range=${$('range').value}`);
  const isEdge = id.includes('|');
  const e = isEdge ? state.graph?.edges.find((x) => x.id === id) : null;
  const n = isEdge ? null : state.graph?.nodes.find((x) => x.id === id);
  let head = '';
  if (e) {
    head = `<h2>${esc(nodeLabel(e.source))} → ${esc(nodeLabel(e.target))} <span class="badge ${e.health}">${e.health === 'bad' ? 'unhealthy' : e.health}</span></h2>
      <dl class="figures"><dt>protocol</dt><dd>${e.protocol.toUpperCase()}${e.mtls ? ` · ${LOCK_SVG} mutual TLS` : ' · plain text'}</dd>
      <dt>rate</dt><dd>${e.protocol === 'tcp' ? bytes(e.bytesPerSecond) : rate(e.rps)}</dd><dt>errors</dt><dd id="detail-error-share">${pct(e.errorShare)}</dd>
      <dt>p50 / p99</dt><dd>${warmingUp() ? 'warming up (start-up still in the window)' : `${ms(e.p50)} / ${ms(e.p99)}`}</dd><dt>reported by</dt><dd>${e.reporter}</dd>
      ${e.protocol === 'tcp' ? '' : `<dt>by code</dt><dd id="detail-codes">${breakdown(e.codes) || '–'}</dd><dt>by flag</dt><dd id="detail-flags">${breakdown(e.flags) || 'none'}</dd>`}</dl>`;
  } else if (n) {
    const why = n.unknownPeers.map((u) => `${esc(u.reason)} (${esc(u.reporter)}) ${rate(u.rate)}`).join(', ');
    head = `<h2>${esc(nodeLabel(n.id))} <span class="badge ${n.health}">${n.health}</span></h2><dl class="figures"><dt>inbound</dt><dd>${rate(n.inboundRps)} · ${pct(n.inboundErrorShare)} errors</dd>${why ? `<dt>unknown peers</dt><dd>${why}</dd>` : ''}</dl>`;
  }
  const service = !isEdge && id.startsWith('svc:');
  const sides = isEdge ? side('this edge', d.inbound, e?.protocol) : `${side(service ? 'from its callers' : 'inbound', d.inbound)}${side(service ? 'to its workloads' : 'outbound', d.outbound)}`;
  $('panel-detail').innerHTML = `${head}<div class="sides">${sides}</div>`;
}

async function showSelf() {
  const s = await getJson('/api/self');
  if (s.warmingUp) { $('panel-self').innerHTML = '<p class="muted">warming up…</p>'; return; }
  $('panel-self').innerHTML = `<h2>meshtel itself</h2><dl class="figures">
    <dt>series active</dt><dd>${s.seriesActive}</dd><dt>series overflowed</dt><dd>${s.seriesOverflowTotal}</dd>
    <dt>peer cache entries</dt><dd>${s.peerCacheEntries}</dd><dt>peer cache hit share</dt><dd>${pct(s.peerCacheHitShare)}</dd>
    <dt>spans dropped</dt><dd>${s.spansDroppedTotal}</dd><dt>tap records dropped</dt><dd>${s.tapDroppedTotal}</dd></dl>
    <h3>scrape sizes (samples)</h3><table><tbody>${s.scrapeSamples.map((x) => `<tr><td>${esc(x.endpoint)}</td><td>${x.samples}</td></tr>`).join('')}</tbody></table>`;
}

function tab(name) {
  for (const t of ['detail', 'tap', 'self']) {
    $(`tab-${t}`).setAttribute('aria-selected', String(t === name));
    $(`panel-${t}`).hidden = t !== name;
  }
  if (name === 'self') showSelf().catch((err) => ($('panel-self').textContent = err.message));
}

function tapRow(r) {
  const trace = r.traceId
    ? state.config.traceUrl
      ? `<a href="${esc(state.config.traceUrl.replace('{traceId}', r.traceId))}" target="_blank" rel="noopener">${esc(r.traceId.slice(0, 8))}…</a>`
      : esc(r.traceId.slice(0, 8))
    : '';
  const tr = document.createElement('tr');
  tr.innerHTML = `<td>${new Date(r.time).toLocaleTimeString([], { hour12: false })}</td><td>${r.direction === 'inbound' ? 'in' : 'out'}</td><td>${esc(r.peerWorkload)}${r.peerUnknownReason ? ` (${esc(r.peerUnknownReason)})` : ''}</td><td>${esc(r.method)}</td><td title="${esc(r.authority)}">${esc(r.authority)}</td><td title="${esc(r.path)}">${esc(r.path)}</td><td class="${r.code >= 500 || r.code === 0 ? 'bad' : ''}">${r.code}</td><td>${esc(r.flags)}</td><td>${r.durationMs.toFixed(1)}</td><td>${trace}</td>`;
  const body = $('tap-table').tBodies[0];
  body.prepend(tr);
  while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
}

function toggleTap() {
  if (state.tap) {
    state.tap.close();
    state.tap = null;
    $('tap-toggle').textContent = 'Start';
    $('tap-status').textContent = 'stopped';
    return;
  }
  const wl = $('tap-workload').value;
  const es = new EventSource(`/api/tap?workload=${encodeURIComponent(wl)}`);
  let n = 0;
  es.onmessage = (m) => {
    n++;
    tapRow(JSON.parse(m.data));
    $('tap-status').textContent = `${n} requests`;
  };
  es.onerror = () => ($('tap-status').textContent = 'stream interrupted, retrying…');
  state.tap = es;
  $('tap-toggle').textContent = 'Stop';
  $('tap-status').textContent = 'waiting for requests…';
}

cy.on('tap', 'node, edge', (ev) => {
  const id = ev.target.id();
  if (id.startsWith('ns:')) return;
  state.selected = id;
  tab('detail');
  const wl = ev.target.isNode() ? id : ev.target.data('target');
  if (state.config.taps.includes(wl)) $('tap-workload').value = wl;
  showDetail(id).catch((err) => ($('panel-detail').textContent = err.message));
});
$('tab-detail').onclick = () => tab('detail');
$('tab-tap').onclick = () => tab('tap');
$('tab-self').onclick = () => tab('self');
$('tap-toggle').onclick = toggleTap;
$('refresh').onchange = schedule;
$('range').onchange = () => state.selected && showDetail(state.selected);

state.config = await getJson('/api/config');
$('source').textContent = `source: ${state.config.source}`;
$('tap-workload').innerHTML = state.config.taps.map((t) => `<option>${esc(t)}</option>`).join('');
if (state.config.taps.length === 0) $('tap-status').textContent = 'no tap endpoints configured (--tap ns/workload=URL)';
await refresh();
schedule();
