#!/usr/bin/env node
// The web console in a real browser: Debian's chromium, headless, driven by
// puppeteer-core (scripts/deps.sh installs both). One browser for every
// check, in order, against a console whose state the caller prepared
// (tests/integration/web_browser_test.cpp starts the stack, a worker and
// `media-sync web`, then runs this and checks Redis afterwards).
//
// Environment:
//   CONSOLE_URL     the console, e.g. http://127.0.0.1:41234
//   WEB_TOKEN       the console's WEB_TOKEN
//   EXPECT          JSON: {pending, failed, processing, target_sha256,
//                   hostile_sha256, synced_sha256, synced_box, worker}
//   SCREENSHOT_DIR  when set, a PNG of each page is written there
//   CHROMIUM        the browser (default /usr/bin/chromium)
//
// Prints one "ok - ..." line per check; the first failed check prints
// "not ok - ..." and the script exits 1.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const puppeteer = require(path.join(__dirname, '../../.deps/browser/node_modules/puppeteer-core'));

const consoleUrl = process.env.CONSOLE_URL;
const token = process.env.WEB_TOKEN;
const expect = JSON.parse(process.env.EXPECT || '{}');
const screenshots = process.env.SCREENSHOT_DIR || '';
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const started = Date.now();

function check(condition, what) {
  if (!condition) throw new Error(what);
}

async function step(name, body) {
  try {
    await body();
    console.log('ok - ' + name);
  } catch (error) {
    console.log('not ok - ' + name + ': ' + (error && error.stack ? error.stack : error));
    throw error;
  }
}

async function shot(page, name) {
  if (!screenshots) return;
  await page.screenshot({ path: path.join(screenshots, name + '.png'), fullPage: true });
}

async function text(page, selector) {
  return page.$eval(selector, (node) => node.textContent);
}

// A page of another origin with a form that posts to the console, as a
// cross-site request forgery would: text/plain, so that the body reads as
// JSON, and the browser's own cookies.
function attacker() {
  const server = http.createServer((request, response) => {
    const target = consoleUrl + '/api/failed/purge';
    response.writeHead(200, { 'Content-Type': 'text/html' });
    response.end('<!doctype html><form id="forged" method="post" enctype="text/plain" action="' +
      target + '"><input type="hidden" name=\'{"all":true,"x":"\' value=\'"}\'>' +
      '<button id="go" type="submit">win a prize</button></form>');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'media-sync-browser-'));
  const browser = await puppeteer.launch({
    executablePath: chromium,
    pipe: true,
    ignoreDefaultArgs: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--user-data-dir=' + profile, 'about:blank'],
  });
  const evil = await attacker();
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15000);
    await page.setViewport({ width: 1280, height: 860 });
    const problems = [];
    page.on('pageerror', (error) => problems.push('page error: ' + error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 40[13]/.test(message.text())) {
        problems.push('console error: ' + message.text());
      }
    });

    await step('the overview renders the known state', async () => {
      await page.goto(consoleUrl + '/');
      await page.waitForSelector('#queues [data-card="pending"]');
      await page.waitForSelector('#chart-files path.area');
      check(await text(page, '[data-card="pending"]') === String(expect.pending), 'pending');
      check(await text(page, '[data-card="failed"]') === String(expect.failed), 'failed');
      check(await text(page, '[data-card="processing"]') === String(expect.processing), 'processing');
      const listed = await text(page, '#problems');
      check(listed.includes(expect.failed + ' failed jobs'), 'problems: ' + listed);
      const faults = await text(page, '#faults');
      check(faults.includes('missing_file') && faults.includes('invalid_job'), 'faults: ' + faults);
      const totals = await text(page, '#day-totals');
      check(totals.startsWith(expect.synced_files + ' files synced'), 'totals: ' + totals);
      check((await text(page, '#overview-boxes')).includes('box-a'), 'boxes');
      await shot(page, 'console-overview');
    });

    await step('the workers page shows the jobs held and an upload in progress', async () => {
      await page.goto(consoleUrl + '/workers');
      await page.waitForSelector('#workers tr[data-worker="' + expect.worker + '"]');
      const table = await text(page, '#workers');
      check(table.includes('parts stored'), 'progress: ' + table);
      await shot(page, 'console-workers');
    });

    await step('the boxes page shows every box with its bytes', async () => {
      await page.goto(consoleUrl + '/boxes');
      await page.waitForSelector('#boxes tr[data-box="box-b"]');
      check((await page.$$('#boxes .bar')).length >= 4, 'bars');
      await shot(page, 'console-boxes');
    });

    await step('a hostile entry is shown as text and runs nothing', async () => {
      await page.goto(consoleUrl + '/failed');
      const row = '#failed tr.entry[data-index]';
      await page.waitForSelector(row);
      const hostile = await page.$$eval('#failed tr.entry', (rows, sha) =>
        rows.filter((r) => r.textContent.includes('__pwned')).map((r) => r.textContent), expect.hostile_sha256);
      check(hostile.length === 1, 'one hostile row');
      check(hostile[0].includes('<script>window.__pwned=1</script>'), 'script shown as text');
      check(hostile[0].includes('<img src=x onerror=window.__pwned=2>'), 'img shown as text');
      await page.$$eval('#failed tr.entry', (rows) =>
        rows.find((r) => r.textContent.includes('__pwned')).click());
      await page.waitForSelector('#entry-error');
      check((await text(page, '#entry-error')).includes('onerror=window.__pwned=2'), 'detail');
      check((await text(page, '#entry-json')).includes('<script>'), 'entry JSON');
      const injected = await page.evaluate(() =>
        document.querySelectorAll('main img, main script, main iframe').length);
      check(injected === 0, injected + ' elements made from the entry');
      check(await page.evaluate(() => window.__pwned) === undefined, 'script ran');
    });

    await step('a change without the token is refused', async () => {
      check(await page.$eval('#requeue-matching', (b) => b.disabled), 'the button is enabled');
      const status = await page.evaluate(async () => {
        const answer = await fetch(document.body.dataset.base + '/api/failed/purge', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"all":true}' });
        return answer.status;
      });
      check(status === 401, 'status ' + status);
      await shot(page, 'console-failed');
    });

    await step('logging in sets an HttpOnly, SameSite=Strict session cookie', async () => {
      await page.goto(consoleUrl + '/login?next=/failed');
      await page.type('#token', token);
      await Promise.all([page.waitForNavigation(), page.click('#login-button')]);
      check(new URL(page.url()).pathname === '/failed', 'landed on ' + page.url());
      const cookie = (await page.cookies()).find((c) => c.name === 'media_sync_session');
      check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
      check(await page.evaluate(() => document.cookie) === '', 'the cookie is readable by script');
    });

    await step('a failure found by filter and requeued from the page leaves the failed queue', async () => {
      await page.waitForSelector('#failed tr.entry');
      await page.type('#grep', expect.target_sha256);
      await page.click('#apply');
      await page.waitForFunction(() =>
        document.querySelectorAll('#failed tr.entry').length === 1 &&
        document.getElementById('failed-summary').textContent.includes('1 matching'));
      await page.waitForFunction(() => !document.getElementById('requeue-matching').disabled);
      await page.click('#requeue-matching');
      await page.waitForSelector('#confirm-message');
      const question = await text(page, '#confirm-message');
      check(question === 'Requeue all 1 entry matching “' + expect.target_sha256 + '”?', question);
      await shot(page, 'console-failed-confirm');
      await page.click('#confirm-ok');
      await page.waitForSelector('#action-done');
      check(await text(page, '#action-done') === 'Requeued 1 entry.', await text(page, '#action-done'));
      await page.waitForSelector('#failed-empty');
      const status = await page.evaluate(async () =>
        (await fetch(document.body.dataset.base + '/api/status')).json());
      check(status.queues.failed === expect.failed - 1, 'failed ' + status.queues.failed);
      check(status.queues.pending === expect.pending + 1, 'pending ' + status.queues.pending);
    });

    await step('a cross-site form post is refused, logged in or not', async () => {
      const port = evil.address().port;
      // localhost is another site than 127.0.0.1: the Strict cookie stays
      // home. 127.0.0.1 on another port is the same site, another origin:
      // the cookie goes along, and the request is refused all the same.
      for (const origin of ['http://localhost:' + port, 'http://127.0.0.1:' + port]) {
        const forged = await browser.newPage();
        await forged.goto(origin + '/');
        const [response] = await Promise.all([forged.waitForNavigation(), forged.click('#go')]);
        const body = await response.text();
        check(response.status() === 403, origin + ': ' + response.status() + ' ' + body);
        check(body.includes('another site'), origin + ': ' + body);
        await forged.close();
      }
      const status = await page.evaluate(async () =>
        (await fetch(document.body.dataset.base + '/api/status')).json());
      check(status.queues.failed === expect.failed - 1, 'purged: failed ' + status.queues.failed);
    });

    await step('a box is paused with a reason and resumed from the boxes page', async () => {
      await page.goto(consoleUrl + '/boxes');
      const row = '#boxes tr[data-box="box-b"]';
      await page.waitForSelector(row + ' button.pause:not([disabled])');
      await page.click(row + ' button.pause');
      await page.waitForSelector('#confirm-input');
      await page.type('#confirm-input', 'disk swap <img src=x onerror=window.__pwned=3>');
      await shot(page, 'console-boxes-pause');
      await page.click('#confirm-ok');
      await page.waitForSelector(row + ' .state.paused');
      const reason = await text(page, row + ' .pause-reason');
      check(reason.includes('disk swap <img src=x onerror=window.__pwned=3>'), reason);
      check(reason.includes('web console, login session'), reason);
      check(await page.evaluate(() => document.querySelectorAll('main img').length) === 0, 'img');
      const status = await page.evaluate(async () =>
        (await fetch(document.body.dataset.base + '/api/status')).json());
      check(status.boxes.find((b) => b.id === 'box-b').paused === true, 'not paused');
      await page.click(row + ' button.resume');
      await page.waitForSelector('#confirm-message');
      await page.click('#confirm-ok');
      await page.waitForSelector(row + ' button.pause');
      check(await page.evaluate(() => window.__pwned) === undefined, 'script ran');
    });

    await step('a job is found by its sha256', async () => {
      await page.goto(consoleUrl + '/jobs');
      await page.type('#job-query', expect.synced_sha256);
      await page.click('#job-find');
      await page.waitForSelector('#job-state');
      check(await text(page, '#job-state') === 'synced', await text(page, '#job-state'));
      check((await text(page, '#job-synced')).includes('box ' + expect.synced_box), 'box');
      const row = await text(page, '#job-row');
      check(row.includes(expect.synced_sha256), 'row: ' + row);
      check(new URL(page.url()).pathname === '/jobs/' + expect.synced_sha256, page.url());
      await shot(page, 'console-job');
      await page.goto(consoleUrl + '/jobs/' + expect.target_sha256);
      await page.waitForFunction(() => {
        const state = document.getElementById('job-state');
        return state && state.textContent === 'pending';
      });
    });

    check(problems.length === 0, problems.join('\n'));
    console.log('# ' + ((Date.now() - started) / 1000).toFixed(1) + ' s in the browser');
  } finally {
    evil.close();
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch(() => process.exit(1));
