// The flow map's entry point: reads the objects from the admin API, draws them, and follows
// /api/v1/stream (one snapshot of the fate counters a second) to label the edges with rates.
import { KINDS, buildGraph, render, updateLabels } from './graph.js';
import { openPanel, closePanel, refreshPanel } from './panel.js';

/** Snapshots kept to compute rates: the last 5 s (6 snapshots one second apart). */
const WINDOW = 6;
/** Counters that grow (rates are their differences); other numbers are shown as they are. */
const COUNTERS = ['delivered', 'dropped', 'deadLettered', 'retries', 'filtered', 'shed', 'deferred'];

const $ = (id) => document.getElementById(id);
const svg = $('graph');
let graph = { nodes: new Map(), edges: new Map() };
let snapshots = [];
let generation = null;
let selected = null;
let loading = null;

// A token given as /ui#token=… is kept for this tab only and taken out of the address bar.
const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  sessionStorage.setItem('knit-token', fromHash);
  window.history.replaceState(null, '', location.pathname);
}

/** GET an admin API path: {status, body} (body is JSON, or null). */
export async function api(path, init = {}) {
  const token = sessionStorage.getItem('knit-token');
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await fetch(path, { ...init, headers: { ...headers, ...(init.headers || {}) } });
  if (r.status === 401) showLogin();
  let body = null;
  try { body = init.raw ? r : await r.json(); } catch (_) { body = null; }
  return { status: r.status, ok: r.ok, body };
}

function showLogin() {
  $('login').hidden = false;
  $('conn').dataset.state = 'unauthorized';
  $('conn').textContent = 'token needed';
}
$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem('knit-token', $('token').value);
  $('login').hidden = true;
  loadObjects();
});

async function loadObjects() {
  if (loading) return loading;
  loading = (async () => {
    const lists = await Promise.all(KINDS.map((k) => api(`/api/v1/${k}`).catch(() => null)));
    const objects = lists.flatMap((r) => (r && r.ok && r.body && Array.isArray(r.body.items) ? r.body.items : []));
    graph = buildGraph(objects);
    render(svg, graph, select, selected && selected.id);
    $('empty').hidden = graph.nodes.size > 0;
    svg.dataset.nodes = String(graph.nodes.size);
    svg.dataset.edges = String(graph.edges.size);
    svg.dataset.generation = String(generation);
    updateLabels(svg, rates());
    if (selected) {
      const again = graph.nodes.get(selected.id);
      if (again) { selected = again; refreshPanel(again, counters(again.id)); } else { selected = null; closePanel(); }
    }
  })().finally(() => { loading = null; });
  return loading;
}

function select(node) {
  selected = node;
  for (const g of svg.querySelectorAll('g.node.selected')) g.classList.remove('selected');
  const g = [...svg.querySelectorAll('g.node')].find((x) => x.dataset.node === node.id);
  if (g) g.classList.add('selected');
  openPanel(node, counters(node.id), api);
}
$('close').addEventListener('click', () => {
  selected = null;
  for (const g of svg.querySelectorAll('g.node.selected')) g.classList.remove('selected');
  closePanel();
});

/** The latest counters of one egress, or undefined. */
function counters(egress) {
  const last = snapshots[snapshots.length - 1];
  return last && last.egresses ? last.egresses[egress] : undefined;
}

/** Per egress: events/s of every counter over the window, and the latest value of gauges. */
function rates() {
  const out = new Map();
  if (snapshots.length === 0) return out;
  const last = snapshots[snapshots.length - 1], first = snapshots[0];
  const dt = (last.at - first.at) / 1000;
  for (const [egress, now] of Object.entries(last.egresses || {})) {
    const then = (first.egresses || {})[egress] || {};
    const r = {};
    for (const [k, v] of Object.entries(now)) {
      if (typeof v !== 'number') continue;
      if (COUNTERS.includes(k)) {
        r[k] = dt > 0 ? Math.max(0, v - (then[k] || 0)) / dt : 0;
      } else {
        r[k] = v;
      }
    }
    for (const k of COUNTERS) if (r[k] === undefined) r[k] = 0;
    out.set(egress, r);
  }
  return out;
}

function onSnapshot(s) {
  if (typeof s.at !== 'number') return;
  snapshots.push(s);
  if (snapshots.length > WINDOW) snapshots = snapshots.slice(-WINDOW);
  if (s.generation !== generation) {
    generation = s.generation;
    loadObjects();
  }
  updateLabels(svg, rates());
  const t = s.totals || {};
  $('summary').textContent = `${graph.nodes.size} objects · delivered ${t.delivered || 0} · dead-lettered ${t.deadLettered || 0} · dropped ${t.dropped || 0} · unmatched ${t.unmatched || 0}`;
  svg.dataset.snapshots = String(Number(svg.dataset.snapshots || 0) + 1);
  if (selected) refreshPanel(selected, counters(selected.id));
}

/** Follow the stream; on a break, reconnect after a growing pause (at most 10 s). */
async function follow() {
  let pause = 500;
  for (;;) {
    try {
      const r = await api('/api/v1/stream', { raw: true, headers: { accept: 'text/event-stream' } });
      if (!r.ok) throw new Error(`stream answered ${r.status}`);
      $('conn').dataset.state = 'live';
      $('conn').textContent = 'live';
      pause = 500;
      // A new stream counts generations from its start: read the objects again.
      generation = null;
      snapshots = [];
      await readEvents(r.body.body, (name, data) => {
        if (name === 'snapshot') onSnapshot(JSON.parse(data));
      });
    } catch (e) {
      console.warn('flow map stream:', e);
    }
    if ($('conn').dataset.state !== 'unauthorized') {
      $('conn').dataset.state = 'reconnecting';
      $('conn').textContent = 'reconnecting…';
    }
    await new Promise((done) => setTimeout(done, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

/** Parse a text/event-stream body, calling `onEvent(name, data)` for each event. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '', name = 'message', data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // One snapshot is small; a server that never ends a line must not grow this forever.
    if (buffer.length > 4 * 1024 * 1024) throw new Error('event too large');
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      if (line === '') {
        if (data.length) onEvent(name, data.join('\n'));
        name = 'message'; data = [];
      } else if (line.startsWith('event:')) {
        name = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  }
}

loadObjects();
follow();
