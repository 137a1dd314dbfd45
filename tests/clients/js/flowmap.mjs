// Drive Knit's flow map (/ui) in a real headless Chromium (npm `playwright-core` with Debian's
// /usr/bin/chromium) and check what it shows. Used by tests/ui.rs; run by hand to take a
// screenshot.
//
// usage: node flowmap.mjs SPEC_JSON
//   SPEC_JSON = {
//     "admin": "http://127.0.0.1:PORT",           the admin listener
//     "screenshot": "/path/map.png",              where to save the page
//     "nodes": ["Broker/default/b", ...],          nodes that must appear (data-node)
//     "ready": ["Broker/default/b", ...],          nodes that must turn green (data-ready=True)
//     "edges": [["FROM", "TO"], ...],              edges that must appear (data-from, data-to)
//     "send": {"url": BROKER-URL, "type": T},     where to post events until rates move
//     "flowing": "Trigger/default/t",             egress whose outgoing rate must rise above 0
//     "failing": "Trigger/default/f",             egress whose error rate must rise above 0 (optional)
//     "click": "Trigger/default/f",               node to click: its panel must open
//     "chromium": "/usr/bin/chromium"             (optional)
//   }
// Prints one JSON line of what it saw; exits non-zero (with a screenshot beside the asked one)
// when something is missing. Every wait polls with a deadline; the whole run has one too.
import { chromium } from 'playwright-core';

const spec = JSON.parse(process.argv[2] ?? '{}');
const PATIENCE = 20_000;
const watchdog = setTimeout(() => { console.error('flowmap: gave up after 120 s'); process.exit(3); }, 120_000);
watchdog.unref();

const q = (s) => JSON.stringify(s);
const nodeSel = (id) => `g.node[data-node=${q(id)}]`;
const edgeSel = (from, to) => `g.edge[data-from=${q(from)}][data-to=${q(to)}]`;
const outEdge = (egress) => `g.edge[data-egress=${q(egress)}][data-role="out"] text.rate`;
const seen = { nodes: 0, edges: 0, sent: 0 };

let sent = 0;
/** Post `n` binary-mode events to the broker. */
async function send(n) {
  const posts = [];
  for (let i = 0; i < n; i += 1) {
    sent += 1;
    posts.push(fetch(spec.send.url, {
      method: 'POST',
      headers: { 'ce-specversion': '1.0', 'ce-id': `flowmap-${process.pid}-${sent}`, 'ce-source': '/flowmap',
        'ce-type': spec.send.type ?? 'dev.knit.flowmap', 'content-type': 'application/json' },
      body: JSON.stringify({ n: sent }),
    }).then((r) => { if (r.status >= 300) throw new Error(`ingress answered ${r.status}`); }));
  }
  await Promise.all(posts);
}

/** Send events in small batches until `selector`'s `attr` is above 0, or fail at the deadline. */
async function sendUntil(page, selector, attr, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await send(5);
    try {
      await page.waitForFunction(([sel, a]) => {
        const e = document.querySelector(sel);
        return e && Number(e.getAttribute(a)) > 0;
      }, [selector, attr], { timeout: 1500, polling: 100 });
      return page.$eval(selector, (e, a) => ({ value: Number(e.getAttribute(a)), text: e.textContent }), attr);
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} stayed at 0 after ${sent} events`);
    }
  }
}

const browser = await chromium.launch({ executablePath: spec.chromium ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1800, height: 600 } });
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
// The event journal's endpoints may not exist on this server: their 404s are expected.
page.on('console', (m) => {
  const url = m.location().url ?? '';
  if (m.type() === 'error' && !url.includes('/api/v1/events')) problems.push(`console: ${m.text()} (${url})`);
});
let failed = null;
try {
  await page.goto(`${spec.admin}/ui`);
  for (const id of spec.nodes ?? []) {
    await page.locator(nodeSel(id)).waitFor({ state: 'attached', timeout: PATIENCE }).catch(() => { throw new Error(`no node ${id}`); });
    seen.nodes += 1;
  }
  for (const id of spec.ready ?? []) {
    await page.locator(`${nodeSel(id)}[data-ready="True"]`).waitFor({ state: 'attached', timeout: PATIENCE })
      .catch(() => { throw new Error(`node ${id} is not shown Ready`); });
  }
  for (const [from, to] of spec.edges ?? []) {
    await page.locator(edgeSel(from, to)).first().waitFor({ state: 'attached', timeout: PATIENCE })
      .catch(() => { throw new Error(`no edge ${from} → ${to}`); });
    seen.edges += 1;
  }
  await page.waitForFunction(() => Number(document.getElementById('graph').dataset.snapshots || 0) > 0,
    null, { timeout: PATIENCE }).catch(() => { throw new Error('no snapshot arrived on /api/v1/stream'); });
  if (spec.flowing) seen.flowing = await sendUntil(page, outEdge(spec.flowing), 'data-rate', `the rate of ${spec.flowing}`);
  if (spec.failing) seen.failing = await sendUntil(page, outEdge(spec.failing), 'data-errors', `the error rate of ${spec.failing}`);
  if (spec.click) {
    await page.locator(nodeSel(spec.click)).click();
    await page.locator(`#panel[data-node=${q(spec.click)}]`).waitFor({ state: 'attached', timeout: PATIENCE })
      .catch(() => { throw new Error(`clicking ${spec.click} opened no panel`); });
    await page.waitForFunction(() => !['idle', 'loading'].includes(document.getElementById('failures').dataset.state),
      null, { timeout: PATIENCE, polling: 100 }).catch(() => { throw new Error('the failures never loaded'); });
    seen.failures = await page.$eval('#failures', (e) => e.dataset.state);
    if (seen.failures === 'loaded') {
      await page.locator('#failures li').first().click();
      await page.waitForFunction(() => document.getElementById('journey').dataset.state !== 'loading',
        null, { timeout: PATIENCE, polling: 100 });
      seen.journey = await page.$eval('#journey', (e) => e.dataset.state);
    }
  }
  seen.sent = sent;
  if (problems.length) throw new Error(problems.join('; '));
} catch (e) {
  failed = e;
}
const shot = failed ? spec.screenshot.replace(/(\.png)?$/, '.failed.png') : spec.screenshot;
await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
await browser.close();
console.log(JSON.stringify({ ok: !failed, seen, screenshot: shot, error: failed ? String(failed.message ?? failed) : undefined }));
process.exit(failed ? 1 : 0);
