// The side panel of a Trigger or Subscription: its status and counters, its last failures
// (GET /api/v1/events?…&failed=true) and, for the one clicked, its journey as `knit trace`
// tells it (GET /api/v1/events/{ns}/{broker}/{id}). Text only, never markup.

const $ = (id) => document.getElementById(id);
let current = null;

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const when = (at) => {
  if (at === undefined || at === null) return '';
  const d = typeof at === 'number' ? new Date(at) : new Date(String(at));
  return Number.isNaN(d.getTime()) ? String(at) : d.toISOString().replace('T', ' ').replace('Z', '');
};
const isBad = (outcome) => outcome && !/^(delivered|filtered|matched)$/i.test(String(outcome));

/** The Broker (or Channel) whose journal holds the events of this node. */
function hubOf(node) {
  const spec = (node.obj && node.obj.spec) || {};
  if (node.kind === 'Trigger') return spec.broker || 'default';
  return spec.channel && spec.channel.name;
}

function facts(node, counters) {
  const o = node.obj || {}, st = o.status || {};
  const rows = [['kind', node.kind], ['namespace', node.ns], ['Ready', node.ready.status]];
  if (node.ready.reason) rows.push(['reason', node.ready.reason]);
  if (node.ready.message) rows.push(['message', node.ready.message]);
  const sub = st.subscriberUri || (st.physicalSubscription && st.physicalSubscription.subscriberUri);
  if (sub) rows.push(['subscriber', sub]);
  const dls = st.deadLetterSinkUri || (st.physicalSubscription && st.physicalSubscription.deadLetterSinkUri);
  if (dls) rows.push(['dead letters to', dls]);
  rows.push(['hub', `${node.kind === 'Trigger' ? 'Broker' : 'Channel'} ${hubOf(node) || '?'}`]);
  if (counters) {
    for (const [k, v] of Object.entries(counters)) rows.push([k, v]);
  } else {
    rows.push(['counters', 'no events yet']);
  }
  $('panel-facts').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v)]));
}

/** Open the panel on `node` and read its failures. */
export function openPanel(node, counters, api) {
  current = { node, api, errors: errorCount(counters), journey: null };
  $('panel').hidden = false;
  $('panel').dataset.node = node.id;
  $('panel-title').textContent = `${node.kind} ${node.name}`;
  facts(node, counters);
  $('journey').hidden = true;
  $('journey').replaceChildren();
  loadFailures();
}

export function closePanel() {
  current = null;
  $('panel').hidden = true;
  delete $('panel').dataset.node;
}

/** New counters (every second): update the facts; read the failures again when they grew. */
export function refreshPanel(node, counters) {
  if (!current || current.node.id !== node.id) return;
  current.node = node;
  facts(node, counters);
  const errors = errorCount(counters);
  if (errors !== current.errors) {
    current.errors = errors;
    loadFailures();
  }
}

function errorCount(c) {
  return c ? (c.deadLettered || 0) + (c.dropped || 0) + (c.retries || 0) : 0;
}

async function loadFailures() {
  const at = current;
  if (!at) return;
  const box = $('failures');
  const hub = hubOf(at.node);
  if (box.dataset.state !== 'loaded') {
    box.dataset.state = 'loading';
    box.replaceChildren(h('p', { class: 'note' }, 'reading the event journal…'));
  }
  const q = new URLSearchParams({ namespace: at.node.ns, failed: 'true', limit: '20' });
  q.set(at.node.kind === 'Trigger' ? 'broker' : 'channel', hub || '');
  let r;
  try {
    r = await at.api(`/api/v1/events?${q}`);
  } catch (e) {
    r = { status: 0, ok: false, body: { error: String(e) } };
  }
  if (current !== at) return;
  if (r.status === 404) {
    box.dataset.state = 'unavailable';
    box.replaceChildren(h('p', { class: 'note' },
      'This server keeps no event journal (GET /api/v1/events answered 404), so failures cannot be shown. The counters above still count them.'));
    return;
  }
  if (!r.ok || !r.body || !Array.isArray(r.body.items)) {
    box.dataset.state = 'error';
    box.replaceChildren(h('p', { class: 'note' }, `Could not read failures: ${(r.body && r.body.error) || `HTTP ${r.status}`}`));
    return;
  }
  const mine = r.body.items.filter((j) => !Array.isArray(j.egresses) || j.egresses.some((e) => e.name === at.node.name && (!e.kind || e.kind === at.node.kind)));
  if (mine.length === 0) {
    box.dataset.state = 'empty';
    box.replaceChildren(h('p', { class: 'note' }, `No failed events of ${at.node.name} in the journal.`));
    return;
  }
  box.dataset.state = 'loaded';
  const list = h('ul');
  for (const j of mine) {
    const eg = (j.egresses || []).find((e) => e.name === at.node.name) || {};
    const attempts = Array.isArray(eg.attempts) ? eg.attempts : [];
    const last = attempts[attempts.length - 1] || {};
    const why = last.status ? `HTTP ${last.status}` : (last.error || eg.reason || '');
    const li = h('li', { 'data-event-id': j.id, onclick: () => showJourney(at, hub, j.id, li) },
      h('span', { class: 'id' }, j.id), ' ', j.type || '', h('br'),
      h('span', { class: isBad(eg.outcome) ? 'outcome-bad' : '' }, eg.outcome || 'failed'),
      ` · ${attempts.length} attempt(s)${why ? ` · ${why}` : ''} · ${when(j.accepted && j.accepted.at)}`);
    list.append(li);
  }
  box.replaceChildren(list);
  if (at.journey) {
    const again = [...list.children].find((li) => li.dataset.eventId === at.journey);
    if (again) again.classList.add('selected');
  }
}

async function showJourney(at, hub, id, li) {
  for (const x of document.querySelectorAll('#failures li.selected')) x.classList.remove('selected');
  if (li) li.classList.add('selected');
  at.journey = id;
  const box = $('journey');
  box.hidden = false;
  box.dataset.state = 'loading';
  box.replaceChildren(h('p', { class: 'note' }, `knit trace ${id} …`));
  const path = `/api/v1/events/${encodeURIComponent(at.node.ns)}/${encodeURIComponent(hub)}/${encodeURIComponent(id)}`;
  let r;
  try { r = await at.api(path); } catch (e) { r = { status: 0, ok: false, body: { error: String(e) } }; }
  if (current !== at || at.journey !== id) return;
  if (!r.ok || !r.body) {
    box.dataset.state = 'error';
    const msg = r.status === 404
      ? `No journey for ${id}: ${(r.body && r.body.error) || 'this server does not serve GET /api/v1/events/{ns}/{broker}/{id} (404)'}`
      : `Could not read the journey: ${(r.body && r.body.error) || `HTTP ${r.status}`}`;
    box.replaceChildren(h('p', { class: 'note' }, msg));
    return;
  }
  box.dataset.state = 'loaded';
  box.dataset.journeyId = id;
  box.replaceChildren(...journey(at, hub, r.body));
}

/** A journey as `knit trace` tells it. */
function journey(at, hub, j) {
  const out = [h('h3', {}, `Journey of ${j.id || '?'}`)];
  if (j.tooOld) {
    out.push(h('p', { class: 'note' }, 'Too old to know: the journal has forgotten this event.'));
    return out;
  }
  const ing = j.ingress || {}, acc = j.accepted || {};
  out.push(h('dl', {},
    h('dt', {}, 'type'), h('dd', {}, j.type || ''),
    h('dt', {}, 'source'), h('dd', {}, j.source || ''),
    h('dt', {}, 'accepted'), h('dd', {}, `${when(acc.at)} at ${ing.kind || ''} ${ing.namespace || ''}/${ing.name || ''}${acc.size !== undefined ? ` · ${acc.size} bytes` : ''}${acc.mode ? ` · ${acc.mode}` : ''}`)));
  for (const e of j.egresses || []) {
    const mine = e.name === at.node.name;
    const box = h('div', { class: `egress${mine ? ' mine' : ''}`, 'data-egress-name': e.name },
      h('strong', {}, `${e.kind || 'Trigger'} ${e.name}`), ' · ',
      e.matched ? 'matched' : `not matched${e.clause ? ` (${typeof e.clause === 'string' ? e.clause : JSON.stringify(e.clause)})` : ''}`,
      e.reason ? ` · ${e.reason}` : '', ' · ',
      h('span', { class: isBad(e.outcome) ? 'outcome-bad' : 'outcome-delivered' }, e.outcome || 'in flight'));
    const attempts = Array.isArray(e.attempts) ? e.attempts : [];
    if (attempts.length) {
      const t = h('table', {}, h('tr', {}, h('th', {}, 'at'), h('th', {}, 'destination'), h('th', {}, 'result'), h('th', {}, 'ms')));
      for (const a of attempts) {
        t.append(h('tr', {}, h('td', {}, when(a.at)), h('td', {}, a.destination || ''),
          h('td', { class: a.status && a.status < 300 ? 'outcome-delivered' : 'outcome-bad' }, a.status ? String(a.status) : (a.error || '')),
          h('td', {}, a.latencyMs !== undefined ? String(a.latencyMs) : '')));
      }
      box.append(t);
    }
    if (e.retries) box.append(h('div', {}, `${e.retries} retries`));
    if (e.reply && e.reply.id) {
      box.append(h('div', {}, 'reply: ', h('a', { onclick: () => showJourney(at, hub, e.reply.id, null) }, e.reply.id)));
    }
    out.push(box);
  }
  return out;
}
