// The flow map's model and drawing: objects of the admin API → nodes and edges → a layered
// layout in four columns (sources → brokers/channels → triggers/subscriptions → sinks) → SVG.
// Every name comes from manifests: text only, never markup.

const SVG = 'http://www.w3.org/2000/svg';
const W = 180, H = 50, COL = 380, ROW = 84, TOP = 40, LEFT = 20;

const SOURCES = ['PingSource', 'ApiServerSource', 'ContainerSource', 'GitHubSource',
  'KafkaSource', 'CloudPubSubSource', 'SinkBinding'];
const HUBS = ['Broker', 'Channel', 'InMemoryChannel', 'KafkaChannel', 'NatsJetStreamChannel',
  'Sequence', 'Parallel'];
const EGRESSES = ['Trigger', 'Subscription'];
export const COLUMNS = ['sources', 'brokers · channels', 'triggers · subscriptions', 'sinks · services'];

/** The admin API's plural of every kind the map draws. */
export const KINDS = ['pingsources', 'apiserversources', 'containersources', 'githubsources',
  'kafkasources', 'cloudpubsubsources', 'sinkbindings', 'brokers', 'channels',
  'inmemorychannels', 'kafkachannels', 'natsjetstreamchannels', 'sequences', 'parallels',
  'triggers', 'subscriptions', 'services', 'kafkasinks'];

function column(kind) {
  if (SOURCES.includes(kind)) return 0;
  if (HUBS.includes(kind)) return 1;
  if (EGRESSES.includes(kind)) return 2;
  return 3;
}

/** The Ready condition of an object: {status, reason, message}. */
export function readiness(o) {
  const conds = (o.status && Array.isArray(o.status.conditions)) ? o.status.conditions : [];
  const c = conds.find((x) => x && x.type === 'Ready');
  if (!c) return { status: 'Unknown', reason: 'no Ready condition yet' };
  const status = c.status === 'True' || c.status === 'False' ? c.status : 'Unknown';
  return { status, reason: c.reason || '', message: c.message || '' };
}

const idOf = (kind, ns, name) => `${kind}/${ns}/${name}`;

/** Nodes and edges of `objects` (every item of the kinds in KINDS). */
export function buildGraph(objects) {
  const nodes = new Map();
  const edges = new Map();
  const byUrl = new Map();
  const own = new Set();
  for (const o of objects) {
    const m = o.metadata || {};
    const id = idOf(o.kind, m.namespace || 'default', m.name);
    nodes.set(id, { id, kind: o.kind, ns: m.namespace || 'default', name: m.name, obj: o,
      col: column(o.kind), ready: readiness(o) });
    own.add(id);
    const st = o.status || {};
    for (const url of [st.address && st.address.url, st.url]) {
      if (url) byUrl.set(url.replace(/\/$/, ''), id);
    }
  }
  const external = (url) => {
    const id = `URI//${url}`;
    if (!nodes.has(id)) {
      let name = url;
      try { const u = new URL(url); name = u.host + (u.pathname === '/' ? '' : u.pathname); } catch (_) { /* keep */ }
      nodes.set(id, { id, kind: 'URI', ns: '', name, url, col: 3,
        ready: { status: 'Unknown', reason: 'an address outside Knit' }, external: true });
    }
    return id;
  };
  const refNode = (ref, ns) => {
    if (!ref || !ref.kind || !ref.name) return null;
    const id = idOf(ref.kind, ref.namespace || ns, ref.name);
    if (!nodes.has(id)) {
      nodes.set(id, { id, kind: ref.kind, ns: ref.namespace || ns, name: ref.name,
        col: column(ref.kind), ready: { status: 'Unknown', reason: 'not found' }, missing: true });
    }
    return id;
  };
  // A destination: its ref, else the resolved URI (a known address or an outside one).
  const dest = (d, resolved, ns) => {
    if (d && d.ref) return refNode(d.ref, ns);
    const url = resolved || (d && d.uri);
    if (!url) return null;
    const key = url.replace(/\/$/, '');
    return byUrl.get(key) || external(key);
  };
  const edge = (from, to, role, egress) => {
    if (!from || !to) return;
    const id = `${from}->${to}#${role}`;
    edges.set(id, { id, from, to, role, egress });
  };
  for (const id of own) {
    const n = nodes.get(id);
    const o = n.obj, spec = o.spec || {}, st = o.status || {};
    const ns = n.ns, delivery = spec.delivery || {};
    if (SOURCES.includes(n.kind)) {
      edge(id, dest(spec.sink, st.sinkUri, ns), 'source', id);
    } else if (n.kind === 'Trigger') {
      edge(refNode({ kind: 'Broker', name: spec.broker }, ns), id, 'in', id);
      edge(id, dest(spec.subscriber, st.subscriberUri, ns), 'out', id);
      if (delivery.deadLetterSink) edge(id, dest(delivery.deadLetterSink, st.deadLetterSinkUri, ns), 'dls', id);
    } else if (n.kind === 'Subscription') {
      const phys = st.physicalSubscription || {};
      if (spec.channel) edge(refNode(spec.channel, ns), id, 'in', id);
      edge(id, dest(spec.subscriber, phys.subscriberUri, ns), 'out', id);
      if (spec.reply) edge(id, dest(spec.reply, phys.replyUri, ns), 'reply', id);
      if (delivery.deadLetterSink) edge(id, dest(delivery.deadLetterSink, phys.deadLetterSinkUri, ns), 'dls', id);
    } else if (n.kind === 'Sequence') {
      (spec.steps || []).forEach((s, i) => edge(id, dest(s, null, ns), `step${i}`, null));
      if (spec.reply) edge(id, dest(spec.reply, null, ns), 'reply', null);
    } else if (n.kind === 'Parallel') {
      (spec.branches || []).forEach((b, i) => edge(id, dest(b.subscriber, null, ns), `branch${i}`, null));
      if (spec.reply) edge(id, dest(spec.reply, null, ns), 'reply', null);
    } else if (HUBS.includes(n.kind) && delivery.deadLetterSink) {
      edge(id, dest(delivery.deadLetterSink, st.deadLetterSinkUri, ns), 'dls', null);
    }
  }
  return { nodes, edges };
}

/** Positions: columns by kind; in each column, nodes near the middle of their neighbours. */
export function layout(graph) {
  const cols = [[], [], [], []];
  for (const n of graph.nodes.values()) cols[n.col].push(n);
  for (const c of cols) c.sort((a, b) => (a.ns + a.name).localeCompare(b.ns + b.name));
  const neigh = new Map([...graph.nodes.keys()].map((k) => [k, []]));
  for (const e of graph.edges.values()) {
    neigh.get(e.from).push(e.to);
    neigh.get(e.to).push(e.from);
  }
  const y = new Map();
  // Hubs first, each given room for its triggers and subscriptions.
  let next = TOP;
  for (const n of cols[1]) {
    const fan = neigh.get(n.id).filter((k) => graph.nodes.get(k).col === 2).length;
    const room = Math.max(1, fan) * ROW;
    y.set(n.id, next + (room - ROW) / 2);
    next += room;
  }
  const place = (list, from) => {
    const want = (n) => {
      const ys = neigh.get(n.id).filter((k) => from.includes(graph.nodes.get(k).col) && y.has(k)).map((k) => y.get(k));
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
    };
    const ordered = list.map((n, i) => ({ n, w: want(n), i }))
      .sort((a, b) => (a.w - b.w) || (a.i - b.i));
    let last = TOP - ROW;
    for (const { n, w } of ordered) {
      const at = Math.max(Number.isFinite(w) ? w : last + ROW, last + ROW);
      y.set(n.id, at);
      last = at;
    }
  };
  place(cols[2], [1]);
  place(cols[3], [2, 1, 0]);
  place(cols[0], [1, 2, 3]);
  for (const n of graph.nodes.values()) {
    n.x = LEFT + n.col * COL;
    n.y = y.get(n.id);
  }
  const bottom = Math.max(TOP + ROW, ...[...graph.nodes.values()].map((n) => n.y + H + 20));
  return { width: LEFT + 3 * COL + W + 40, height: bottom };
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

const short = (s, max) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

function edgePath(a, b) {
  const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
  if (x2 > x1) {
    const dx = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, mx: (x1 + x2) / 2, my: (y1 + y2) / 2 };
  }
  // Backwards (a reply or a loop): around the bottom of both.
  const low = Math.max(a.y, b.y) + H + 24;
  return { d: `M${x1},${y1} C${x1 + 60},${low} ${x2 - 60},${low} ${x2},${y2}`, mx: (x1 + x2) / 2, my: low - 6 };
}

/** Draw `graph` into `svg`; `onClick(node)` for Triggers and Subscriptions. */
export function render(svg, graph, onClick, selected) {
  const size = layout(graph);
  svg.replaceChildren();
  svg.setAttribute('width', size.width);
  svg.setAttribute('height', size.height);
  svg.setAttribute('viewBox', `0 0 ${size.width} ${size.height}`);
  const defs = el('defs');
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z' }));
  defs.append(marker);
  svg.append(defs);
  COLUMNS.forEach((t, i) => svg.append(el('text', { class: 'column-title', x: LEFT + i * COL, y: 20 }, t)));
  const edgeLayer = el('g', { class: 'edges' });
  const nodeLayer = el('g', { class: 'nodes' });
  svg.append(edgeLayer, nodeLayer);
  for (const e of graph.edges.values()) {
    const a = graph.nodes.get(e.from), b = graph.nodes.get(e.to);
    const p = edgePath(a, b);
    const g = el('g', { class: 'edge', 'data-edge': e.id, 'data-from': e.from, 'data-to': e.to,
      'data-role': e.role, 'data-egress': e.egress });
    g.append(el('path', { d: p.d }));
    const label = el('text', { class: 'rate', x: p.mx, y: p.my - 18, 'text-anchor': 'middle',
      'data-rate': '0', 'data-errors': '0' }, e.egress ? '…' : '');
    g.append(label);
    edgeLayer.append(g);
  }
  for (const n of graph.nodes.values()) {
    const clickable = EGRESSES.includes(n.kind) && !n.missing;
    const g = el('g', { class: `node${clickable ? ' clickable' : ''}${n.id === selected ? ' selected' : ''}`,
      'data-node': n.id, 'data-kind': n.kind, 'data-name': n.name, 'data-namespace': n.ns,
      'data-ready': n.ready.status, 'data-missing': n.missing ? 'true' : null,
      transform: `translate(${n.x},${n.y})` });
    const why = [n.ready.reason, n.ready.message].filter(Boolean).join(': ');
    g.append(el('title', {}, `${n.kind} ${n.ns ? `${n.ns}/` : ''}${n.name}\nReady: ${n.ready.status}${why ? ` — ${why}` : ''}`));
    g.append(el('rect', { width: W, height: H }));
    g.append(el('text', { class: 'name', x: 10, y: 20 }, short(n.name, 26)));
    const sub = n.ready.status === 'False' && n.ready.reason ? n.ready.reason : (n.ns ? `${n.kind} · ${n.ns}` : n.kind);
    g.append(el('text', { class: n.ready.status === 'False' ? 'reason' : 'kind', x: 10, y: 38 }, short(sub, 32)));
    if (clickable) {
      g.setAttribute('tabindex', '0');
      g.setAttribute('role', 'button');
      g.addEventListener('click', () => onClick(n));
      g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onClick(n); });
    }
    nodeLayer.append(g);
  }
}

/** Replace the text of `label` by `lines`, one under the other. */
function setLines(label, lines) {
  const x = label.getAttribute('x');
  label.replaceChildren(...lines.filter(Boolean).map((l, i) => el('tspan', { x, dy: i === 0 ? 0 : 13 }, l)));
}

const fmt = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));

/** Write `rates` (by egress: {rate fields, gauges}) onto the edges' labels. */
export function updateLabels(svg, rates) {
  for (const g of svg.querySelectorAll('g.edge[data-egress]')) {
    const r = rates.get(g.getAttribute('data-egress'));
    const label = g.querySelector('text.rate');
    const role = g.getAttribute('data-role');
    if (!r) {
      setLines(label, role === 'dls' || role === 'reply' ? [] : ['0/s', 'no events yet']);
      label.setAttribute('data-rate', '0');
      label.setAttribute('data-errors', '0');
      g.classList.remove('flowing', 'failing');
      continue;
    }
    const errors = r.deadLettered + r.dropped;
    const lag = r.lag === undefined ? '–' : String(r.lag);
    let rate, lines;
    if (role === 'in') {
      rate = r.delivered + errors;
      lines = [`${fmt(rate)}/s matched`, `${fmt(r.filtered)}/s filtered`];
    } else if (role === 'dls') {
      rate = r.deadLettered;
      lines = rate > 0 ? [`${fmt(rate)}/s dead-lettered`] : [];
    } else if (role === 'reply') {
      rate = r.delivered;
      lines = [];
    } else {
      rate = r.delivered;
      let second = `err ${fmt(errors)}/s · lag ${lag}`;
      if (r.retries > 0) second += ` · ${fmt(r.retries)} retries/s`;
      if (r.inFlight !== undefined) second += ` · ${r.inFlight} in flight`;
      lines = [`${fmt(rate)}/s`, second];
    }
    setLines(label, lines);
    label.setAttribute('data-rate', String(rate));
    label.setAttribute('data-errors', String(role === 'in' || role === 'dls' ? 0 : errors));
    g.classList.toggle('flowing', rate > 0);
    g.classList.toggle('failing', role !== 'in' && role !== 'dls' && errors > 0);
  }
}
