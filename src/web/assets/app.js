// The media-sync web console: plain JavaScript, no framework, no external
// resource. Every page reads the JSON API under <base>/api/ and refreshes
// itself by polling; nothing reloads the whole page.
//
// Everything shown comes from outside (job payloads, error texts, keys) and
// may hold HTML or script: it is only ever put into the page as text
// (textContent, createTextNode, attribute values), never parsed as HTML.
'use strict';

(function () {
  const base = document.body.dataset.base || '';
  const main = document.getElementById('main');
  const banner = document.getElementById('banner');
  const updated = document.getElementById('updated');
  const REFRESH_MS = 5000;
  let session = { role: 'none', changes_enabled: false, csrf_token: null, box_pause: false };
  let timer = null;

  // ---- DOM helpers: text only ----
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    append(node, children);
    return node;
  }
  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function replace(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    for (const child of children) {
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- formatting ----
  function bytes(n) {
    if (n === null || n === undefined) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
    let value = Number(n);
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++; }
    return (unit === 0 ? value.toFixed(0) : value.toFixed(1)) + ' ' + units[unit];
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const s = Math.floor(seconds);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
    return Math.floor(s / 86400) + 'd' + String(Math.floor(s / 3600) % 24).padStart(2, '0') + 'h';
  }
  function rate(n, digits) { return Number(n || 0).toFixed(digits === undefined ? 2 : digits); }
  function when(iso) {
    if (!iso) return '–';
    const date = new Date(iso);
    if (isNaN(date)) return String(iso);
    return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function count(n, one, many) { return n + ' ' + (n === 1 ? one : many); }
  function text(value) {
    if (value === null || value === undefined) return '–';
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  // ---- the API ----
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, options) {
    const init = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (options && options.body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      if (session.csrf_token) init.headers['X-CSRF-Token'] = session.csrf_token;
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(base + path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || ('HTTP ' + response.status));
    }
    return body;
  }
  function showError(error) {
    banner.hidden = false;
    replace(banner, error.status === 401 ? 'Not authorised: ' : '', error.message);
  }
  function clearError() { banner.hidden = true; banner.replaceChildren(); }
  function stamp() { updated.textContent = 'updated ' + new Date().toLocaleTimeString(); }

  // Runs `load` now and every `every` ms while the page is shown; a failed
  // round shows its error and the next round tries again.
  function poll(load, every) {
    if (timer) clearInterval(timer);
    const round = async () => {
      if (document.hidden) return;
      try { await load(); clearError(); stamp(); } catch (e) { showError(e); }
    };
    round();
    timer = setInterval(round, every || REFRESH_MS);
  }

  function canChange() { return session.changes_enabled && session.role === 'write'; }
  function whyNoChange() {
    if (!session.changes_enabled) return 'The console is read-only: WEB_TOKEN is not set.';
    if (session.role !== 'write') return 'Log in with WEB_TOKEN to make changes.';
    return '';
  }

  async function loadSession() {
    session = await api('/api/session');
    const box = document.getElementById('session');
    const parts = [];
    if (!session.changes_enabled) parts.push(el('span', { id: 'read-only' }, 'read-only console'));
    if (session.role === 'write') parts.push(el('span', {}, session.via === 'cookie' ? 'logged in' : 'token'));
    else if (session.changes_enabled || session.read_token_required) {
      parts.push(el('a', { href: base + '/login?next=' + encodeURIComponent(location.pathname) , id: 'login-link' }, 'log in'));
    }
    if (session.via === 'cookie') {
      parts.push(el('button', { id: 'logout', onclick: async () => {
        try { await api('/logout', { body: {} }); } finally { location.reload(); }
      } }, 'log out'));
    }
    replace(box, parts);
  }

  // ---- confirmation dialog ----
  // Resolves with false when cancelled; else true, or with `ask` the text
  // typed into its field.
  function confirmDialog(message, action, ask) {
    const labels = { purge: 'Purge', requeue: 'Requeue', pause: 'Pause', resume: 'Resume' };
    return new Promise((resolve) => {
      const field = ask ? el('input', { type: 'text', id: 'confirm-input', class: 'wide', maxlength: 200, placeholder: ask }) : null;
      const close = (answer) => { modal.remove(); resolve(answer && field ? field.value.trim() : answer); };
      const modal = el('div', { class: 'modal', id: 'confirm' },
        el('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true' },
          el('p', { id: 'confirm-message' }, message),
          field,
          el('div', { class: 'buttons' },
            el('button', { id: 'confirm-cancel', onclick: () => close(false) }, 'Cancel'),
            el('button', { id: 'confirm-ok', class: action === 'purge' || action === 'pause' ? 'danger' : 'primary', onclick: () => close(true) },
              labels[action] || 'OK'))));
      document.body.appendChild(modal);
      (field || document.getElementById('confirm-ok')).focus();
    });
  }

  // ---- Overview ----
  function card(label, value, sub, alert) {
    return el('div', { class: 'card' + (alert ? ' alert' : '') },
      el('div', { class: 'label' }, label), el('div', { class: 'value', dataset: { card: label } }, value),
      sub ? el('div', { class: 'sub' }, sub) : null);
  }

  // An area chart of one series (per-minute values summed in buckets).
  function chart(title, points, valueOf, format, cls) {
    const width = 1200, height = 140, pad = 26;
    const bucket = Math.max(1, Math.ceil(points.length / 288));
    const buckets = [];
    for (let i = 0; i < points.length; i += bucket) {
      const slice = points.slice(i, i + bucket);
      buckets.push({ minute: slice[0].minute, value: slice.reduce((s, p) => s + valueOf(p), 0) / (slice.length * 60) });
    }
    const max = Math.max(...buckets.map((b) => b.value), 0);
    const x = (i) => pad + (i / Math.max(1, buckets.length - 1)) * (width - 2 * pad);
    const y = (v) => height - 16 - (max > 0 ? v / max : 0) * (height - 30);
    let path = 'M' + x(0) + ',' + y(0);
    buckets.forEach((b, i) => { path += ' L' + x(i).toFixed(1) + ',' + y(b.value).toFixed(1); });
    path += ' L' + x(buckets.length - 1) + ',' + y(0) + ' Z';
    const graph = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, preserveAspectRatio: 'none', role: 'img' },
      svg('line', { class: 'grid', x1: pad, x2: width - pad, y1: y(0), y2: y(0) }),
      svg('line', { class: 'grid', x1: pad, x2: width - pad, y1: y(max), y2: y(max) }),
      svg('path', { class: 'area ' + cls, d: path }));
    for (let i = 0; i < buckets.length; i += Math.max(1, Math.floor(buckets.length / 8))) {
      const label = new Date(buckets[i].minute).toISOString().slice(11, 16);
      graph.appendChild(svg('text', { x: x(i), y: height - 2 }, label));
    }
    return el('div', { class: 'chart', id: 'chart-' + cls },
      el('div', { class: 'title' }, el('span', {}, title), el('span', {}, 'peak ' + format(max))), graph);
  }

  async function overview() {
    main.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    let activity = null;
    let activityAt = 0;
    poll(async () => {
      const status = await api('/api/status');
      if (!activity || Date.now() - activityAt > 60000) {
        activity = await api('/api/activity?minutes=1440');
        activityAt = Date.now();
      }
      const q = status.queues;
      const problems = status.problems.map((p) => el('li', {}, p));
      for (const advice of status.schema || []) problems.push(el('li', { class: 'advice' }, advice));
      const t = status.throughput;
      // "Now" is the last minute; the window is the last five, both over the
      // time a worker ran.
      const now = t.last_minute || t;
      const faults = Object.entries(activity.faults_by_class);
      replace(main,
        el('h1', {}, 'Overview', el('span', { id: 'health', class: 'health ' + (status.healthy ? 'ok' : 'bad') },
          status.healthy ? 'healthy' : 'needs attention')),
        problems.length ? el('ul', { class: 'problems', id: 'problems' }, problems) : null,
        el('div', { class: 'cards', id: 'queues' },
          card('pending', q.pending, 'oldest ' + duration(status.oldest_pending_age_seconds)),
          card('delayed', q.delayed, status.next_retry_due ? 'next due ' + when(status.next_retry_due) : 'no retry waiting'),
          card('processing', q.processing, count(status.live_workers, 'live worker', 'live workers')),
          card('failed', q.failed, el('a', { href: base + '/failed' }, 'triage'), q.failed > 0),
          card('files/s', rate(now.files_per_second), 'last minute; ' + rate(t.files_per_second) + ' over ' + duration(t.window_seconds)),
          card('bytes/s', bytes(now.bytes_per_second) + '/s', 'last minute; ' + bytes(t.bytes_per_second) + '/s over ' + duration(t.window_seconds)),
          card('unsynced rows', status.unsynced_rows === null ? '–' : status.unsynced_rows, 'media_files')),
        el('h2', {}, 'The last 24 hours'),
        chart('files synced per second', activity.minutes, (p) => p.files, (v) => rate(v) + ' files/s', 'files'),
        chart('bytes uploaded per second', activity.minutes, (p) => p.bytes, (v) => bytes(v) + '/s', 'bytes'),
        el('p', { class: 'muted', id: 'day-totals' },
          count(activity.totals.files, 'file', 'files') + ' synced, ' + bytes(activity.totals.bytes) + ' uploaded, ' +
          activity.totals.failed + ' parked in the failed queue, ' + activity.totals.retried + ' retries'),
        el('h2', {}, 'Failures by class (24 h)'),
        faults.length === 0 ? el('p', { class: 'muted', id: 'faults' }, 'No job fault in the last 24 hours.') :
          el('table', { id: 'faults' },
            el('thead', {}, el('tr', {}, el('th', {}, 'class'), el('th', { class: 'num' }, 'failed'), el('th', { class: 'num' }, 'retried'))),
            el('tbody', {}, faults.map(([name, c]) => el('tr', {}, el('td', {}, name),
              el('td', { class: 'num' }, c.failed), el('td', { class: 'num' }, c.retried))))),
        el('h2', {}, 'Boxes'),
        boxTable(status.boxes, false));
    });
  }

  // ---- Boxes ----
  function boxName(box) { return box.id === null ? '(default)' : box.id; }
  function boxTable(boxes, full) {
    const largest = Math.max(1, ...boxes.map((b) => (b.used_bytes || 0) + (b.reserved_bytes || 0)));
    const head = ['box', 'state', 'endpoint', 'used', 'reserved', 'unsynced rows'];
    if (full) head.push('in flight', 'latency', 'reported by', 'pausing');
    return el('table', { id: full ? 'boxes' : 'overview-boxes' },
      el('thead', {}, el('tr', {}, head.map((h) => el('th', { class: /used|reserved|unsynced|flight|latency/.test(h) ? 'num' : null }, h)))),
      el('tbody', {}, boxes.map((box) => {
        const cells = [
          el('td', { class: 'mono id' }, boxName(box)),
          el('td', {}, el('span', { class: 'state ' + box.state }, box.state),
            box.paused ? [' ', el('span', { class: 'state paused' }, 'paused')] : null,
            box.error ? el('div', { class: 'muted error' }, box.error) : null,
            box.pause ? el('div', { class: 'muted pause-reason' }, 'paused by ', box.pause.by, ' at ', when(box.pause.at), ': ', box.pause.reason) : null),
          el('td', { class: 'mono' }, text(box.endpoint)),
          el('td', { class: 'num' }, bytes(box.used_bytes), full ? bar(box.used_bytes, largest, 'used') : null),
          el('td', { class: 'num' }, bytes(box.reserved_bytes), full ? bar(box.reserved_bytes, largest, 'reserved') : null),
          el('td', { class: 'num' }, text(box.unsynced_rows)),
        ];
        if (full) {
          // Uploads in flight over the reporting worker's adaptive limit for the box.
          const flight = box.in_flight === null || box.in_flight === undefined ? '–' :
            box.in_flight + (box.concurrency_limit ? ' / ' + box.concurrency_limit : '');
          cells.push(el('td', { class: 'num' }, flight));
          cells.push(el('td', { class: 'num' }, box.latency_seconds ? (box.latency_seconds * 1000).toFixed(0) + ' ms' : '–'));
          cells.push(el('td', {}, text(box.reported_by), el('div', { class: 'muted' }, when(box.reported_at))));
          cells.push(el('td', {}, session.box_pause ? pauseButtons(box) : el('span', { class: 'muted' }, 'not available')));
        }
        return el('tr', { dataset: { box: boxName(box) } }, cells);
      })));
  }
  function bar(value, largest, cls) {
    const fill = el('span', { class: cls });
    fill.style.width = Math.min(100, (100 * (value || 0)) / largest).toFixed(1) + '%';
    return el('div', { class: 'bar', title: bytes(value) }, fill);
  }
  // Pausing a box stops every worker from sending it jobs (their jobs wait,
  // no attempt counted), as `media-sync boxes pause` does.
  function pauseButtons(box) {
    const id = boxName(box) === '(default)' ? 'default' : box.id;
    const act = async (what) => {
      const question = what === 'pause'
        ? 'Pause box ' + id + '? Every worker stops sending it jobs within 5 s; they wait, no attempt counted.'
        : 'Resume box ' + id + '? Every worker sends it jobs again within 5 s.';
      const answer = await confirmDialog(question, what, what === 'pause' ? 'reason (shown to every operator)' : null);
      if (answer === false) return;
      try {
        await api('/api/boxes/' + encodeURIComponent(id) + '/' + what, { body: what === 'pause' && answer ? { reason: answer } : {} });
        boxes();
      } catch (e) { showError(e); }
    };
    return box.paused
      ? el('button', { class: 'resume', disabled: !canChange(), title: canChange() ? '' : whyNoChange(), onclick: () => act('resume') }, 'resume')
      : el('button', { class: 'pause', disabled: !canChange(), title: canChange() ? '' : whyNoChange(), onclick: () => act('pause') }, 'pause');
  }
  async function boxes() {
    poll(async () => {
      const status = await api('/api/status');
      replace(main, el('h1', {}, 'Boxes'),
        el('p', { class: 'muted' }, 'State, uploads in flight (over the worker\'s adaptive limit for the box) and latency as last reported by a worker; bytes and unsynced rows from storage_boxes and media_files. Bars are scaled to the largest box.'),
        boxTable(status.boxes, true),
        status.database_error ? el('p', { class: 'banner' }, 'PostgreSQL: ', status.database_error) : null);
    });
  }

  // ---- Workers ----
  function progress(job) {
    if (!job.upload) return el('span', { class: 'muted' }, '–');
    const share = job.size ? Math.min(1, job.upload.bytes_stored / job.size) : 0;
    const fill = el('span', { class: 'progress' });
    fill.style.width = (100 * share).toFixed(1) + '%';
    return [el('div', {}, (100 * share).toFixed(0) + '% · ' + count(job.upload.parts, 'part', 'parts') + ' stored'),
      el('div', { class: 'bar' }, fill)];
  }
  async function workers() {
    poll(async () => {
      const data = await api('/api/workers');
      const rows = [];
      for (const w of data.workers) {
        rows.push(el('tr', { class: 'worker', dataset: { worker: w.id } },
          el('td', { class: 'mono id' }, w.id),
          el('td', {}, el('span', { class: 'state ' + (w.live ? 'live' : 'lapsed') }, w.live ? 'live' : 'lease lapsed')),
          el('td', {}, text(w.host)), el('td', { class: 'num' }, text(w.pid)), el('td', {}, when(w.started_at)),
          el('td', { class: 'num' }, w.held)));
        for (const job of w.jobs) {
          rows.push(el('tr', { class: 'job' },
            el('td', {}), el('td', { colspan: 3, class: 'key mono' },
              job.invalid ? '(invalid job) ' + job.invalid : el('a', { href: base + '/jobs/' + encodeURIComponent(job.sha256) }, job.key)),
            el('td', {}, job.box === null || job.box === undefined ? '(default)' : job.box, ' · ', bytes(job.size)),
            el('td', {}, progress(job))));
        }
        if (w.held > w.jobs.length) rows.push(el('tr', {}, el('td', {}), el('td', { colspan: 5, class: 'muted' }, '… and ' + (w.held - w.jobs.length) + ' more')));
      }
      replace(main, el('h1', {}, 'Workers'),
        el('p', { class: 'muted' }, count(data.live_workers, 'live worker', 'live workers') + ', ' + count(data.processing, 'job', 'jobs') + ' held. ' +
          'A lapsed worker\'s jobs return to pending when a live worker reaps them. Progress is shown for multipart uploads only ' +
          '(files above S3_MULTIPART_THRESHOLD): the parts the storage acknowledged, as the upload journal in Redis records them; ' +
          'single and streamed PUTs show none.'),
        data.workers.length === 0 ? el('p', { id: 'no-workers' }, 'No worker is registered.') :
          el('table', { id: 'workers' },
            el('thead', {}, el('tr', {}, ['worker', 'state', 'host', 'pid', 'started', 'jobs held'].map((h) => el('th', {}, h)))),
            el('tbody', {}, rows)));
    });
  }

  // ---- Failed ----
  const PAGE = 50;
  async function failed() {
    const params = new URLSearchParams(location.search);
    const state = { grep: params.get('grep') || '', box: params.get('box') || '', offset: 0, selected: new Map(), shown: null, data: null };
    const grepInput = el('input', { type: 'search', id: 'grep', placeholder: 'text in error, key, sha256 or path', value: state.grep, class: 'wide' });
    const boxSelect = el('select', { id: 'box' }, el('option', { value: '' }, 'any box'));
    if (state.box) boxSelect.appendChild(el('option', { value: state.box, selected: true }, state.box));
    const summary = el('span', { id: 'failed-summary', class: 'muted' });
    const result = el('div', { id: 'action-result' });
    const table = el('div', { id: 'failed-table' });
    const detail = el('div', { id: 'failed-detail' });
    const buttons = {
      requeueSelected: el('button', { id: 'requeue-selected', onclick: () => act('requeue', 'selected') }, 'Requeue selected'),
      purgeSelected: el('button', { id: 'purge-selected', onclick: () => act('purge', 'selected') }, 'Purge selected'),
      requeueMatching: el('button', { id: 'requeue-matching', onclick: () => act('requeue', 'matching') }, 'Requeue all matching'),
      purgeMatching: el('button', { id: 'purge-matching', onclick: () => act('purge', 'matching') }, 'Purge all matching'),
    };
    const prev = el('button', { id: 'prev', onclick: () => { state.offset = Math.max(0, state.offset - PAGE); load(); } }, '‹ newer');
    const next = el('button', { id: 'next', onclick: () => { state.offset += PAGE; load(); } }, 'older ›');
    const form = el('form', { class: 'toolbar', id: 'filter', onsubmit: (e) => {
      e.preventDefault();
      state.grep = grepInput.value.trim(); state.box = boxSelect.value; state.offset = 0; state.selected.clear();
      const query = new URLSearchParams();
      if (state.grep) query.set('grep', state.grep);
      if (state.box) query.set('box', state.box);
      history.replaceState(null, '', base + '/failed' + (query.toString() ? '?' + query : ''));
      load();
    } }, grepInput, boxSelect, el('button', { type: 'submit', id: 'apply' }, 'Filter'), el('span', { class: 'spacer' }), summary);
    replace(main, el('h1', {}, 'Failed'), form,
      el('div', { class: 'toolbar' }, Object.values(buttons), el('span', { class: 'spacer' }), prev, next,
        el('span', { class: 'muted', id: 'why-no-change' }, whyNoChange())),
      result, table, detail);

    function filterWords() {
      const words = [];
      if (state.grep) words.push('matching “' + state.grep + '”');
      if (state.box) words.push('of box ' + state.box);
      return words.join(' ');
    }
    async function act(action, which) {
      const data = state.data;
      let body, message;
      if (which === 'selected') {
        const chosen = [...state.selected.values()];
        if (chosen.length === 0) return;
        body = { indexes: chosen.map((e) => e.index), ids: chosen.map((e) => e.id) };
        message = (action === 'purge' ? 'Purge ' : 'Requeue ') + count(chosen.length, 'selected entry', 'selected entries') +
          (action === 'purge' ? '? They are deleted for good.' : ' onto the pending queue?');
      } else {
        if (!data || data.matching === 0) return;
        body = state.grep || state.box ? { grep: state.grep, box: state.box } : { all: true };
        message = (action === 'purge' ? 'Purge all ' : 'Requeue all ') + count(data.matching, 'entry', 'entries') +
          (filterWords() ? ' ' + filterWords() : ' of the failed queue') + (action === 'purge' ? '? They are deleted for good.' : '?');
      }
      if (!(await confirmDialog(message, action))) return;
      try {
        const answer = await api('/api/failed/' + action, { body });
        const done = action === 'purge' ? answer.purged : answer.requeued;
        replace(result, el('div', { class: 'notice ok', id: 'action-done' },
          (action === 'purge' ? 'Purged ' : 'Requeued ') + count(done, 'entry', 'entries') +
          (answer.missing ? ' (' + answer.missing + ' had gone meanwhile)' : '') + '.'));
        state.selected.clear();
        await load();
      } catch (e) {
        replace(result, el('div', { class: 'banner', id: 'action-error' }, e.message));
      }
    }
    function renderButtons() {
      const allowed = canChange();
      const matching = state.data ? state.data.matching : 0;
      buttons.requeueSelected.disabled = buttons.purgeSelected.disabled = !allowed || state.selected.size === 0;
      buttons.requeueMatching.disabled = buttons.purgeMatching.disabled = !allowed || matching === 0;
      buttons.requeueSelected.textContent = 'Requeue selected (' + state.selected.size + ')';
      buttons.purgeSelected.textContent = 'Purge selected (' + state.selected.size + ')';
      buttons.requeueMatching.textContent = 'Requeue all matching (' + matching + ')';
      buttons.purgeMatching.textContent = 'Purge all matching (' + matching + ')';
      for (const b of Object.values(buttons)) b.title = allowed ? '' : whyNoChange();
      prev.disabled = state.offset === 0;
      next.disabled = !state.data || state.offset + PAGE >= state.data.matching;
    }
    function showEntry(entry) {
      state.shown = entry.id;
      replace(detail, el('div', { class: 'detail', id: 'entry-detail' },
        el('h2', {}, 'Entry ' + entry.index),
        el('dl', {},
          el('dt', {}, 'failed at'), el('dd', {}, when(entry.failed_at)),
          el('dt', {}, 'attempts'), el('dd', {}, text(entry.attempts)),
          el('dt', {}, 'box'), el('dd', {}, text(entry.box)),
          el('dt', {}, 'error'), el('dd', { id: 'entry-error' }, text(entry.error)),
          el('dt', {}, 'key'), el('dd', { class: 'mono' }, text(entry.key)),
          el('dt', {}, 'sha256'), el('dd', { class: 'mono' }, entry.sha256 ?
            el('a', { href: base + '/jobs/' + encodeURIComponent(entry.sha256) }, entry.sha256) : '–')),
        el('pre', { id: 'entry-json' }, typeof entry.entry === 'string' ? entry.entry : JSON.stringify(entry.entry, null, 2))));
    }
    async function load() {
      const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
      if (state.grep) query.set('grep', state.grep);
      if (state.box) query.set('box', state.box);
      const [data, status] = await Promise.all([api('/api/failed?' + query), api('/api/status')]);
      state.data = data;
      // The box filter offers every box the fleet knows.
      const known = new Set([...boxSelect.options].map((o) => o.value));
      for (const box of status.boxes) {
        if (box.id !== null && !known.has(box.id)) boxSelect.appendChild(el('option', { value: box.id }, box.id));
      }
      replace(summary, count(data.total, 'entry', 'entries') + ' in the failed queue' +
        (state.grep || state.box ? ', ' + data.matching + ' ' + filterWords() : '') +
        (data.entries.length ? ' · showing ' + (data.offset + 1) + '–' + (data.offset + data.entries.length) : ''));
      // Selections are kept by id across refreshes; one no longer shown is dropped.
      const ids = new Set(data.entries.map((e) => e.id));
      for (const id of [...state.selected.keys()]) if (!ids.has(id)) state.selected.delete(id);
      for (const e of data.entries) if (state.selected.has(e.id)) state.selected.set(e.id, e);
      if (data.entries.length === 0) {
        replace(table, el('p', { id: 'failed-empty' }, data.total === 0 ? 'The failed queue is empty.' : 'No entry matches.'));
      } else {
        const all = el('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'select all shown', onchange: () => {
          for (const e of data.entries) { if (all.checked) state.selected.set(e.id, e); else state.selected.delete(e.id); }
          render();
        } });
        const render = () => {
          all.checked = data.entries.every((e) => state.selected.has(e.id));
          replace(table, el('table', { id: 'failed' },
            el('thead', {}, el('tr', {}, el('th', {}, all), ['#', 'failed at', 'attempts', 'box', 'size', 'error', 'key'].map((h) =>
              el('th', { class: h === 'size' || h === 'attempts' || h === '#' ? 'num' : null }, h)))),
            el('tbody', {}, data.entries.map((e) => {
              const box = el('input', { type: 'checkbox', class: 'select', 'aria-label': 'select entry ' + e.index, checked: state.selected.has(e.id),
                onclick: (event) => event.stopPropagation(),
                onchange: () => { if (box.checked) state.selected.set(e.id, e); else state.selected.delete(e.id); renderButtons(); all.checked = data.entries.every((x) => state.selected.has(x.id)); } });
              return el('tr', { class: 'clickable entry' + (state.selected.has(e.id) ? ' selected' : ''), dataset: { index: e.index, id: e.id },
                onclick: () => showEntry(e) },
                el('td', {}, box), el('td', { class: 'num' }, e.index), el('td', {}, when(e.failed_at)),
                el('td', { class: 'num' }, text(e.attempts)), el('td', { class: 'mono id' }, text(e.box)),
                el('td', { class: 'num' }, e.size === null ? '–' : bytes(e.size)),
                el('td', { class: 'error' }, e.kind === 'not_json' ? '(not JSON)' : text(e.error)),
                el('td', { class: 'key mono' }, e.kind === 'job' ? text(e.key) : '(' + e.kind.replace(/_/g, ' ') + ')'));
            }))));
          renderButtons();
        };
        render();
        const again = data.entries.find((e) => e.id === state.shown);
        if (again) showEntry(again);
      }
      renderButtons();
    }
    poll(load, 10000);
  }

  // ---- Job lookup ----
  async function jobs(query) {
    const input = el('input', { type: 'search', id: 'job-query', class: 'wide', placeholder: 'sha256 or object key (media/ab/cd/…)', value: query || '' });
    const out = el('div', { id: 'job-result' });
    replace(main, el('h1', {}, 'Job lookup'),
      el('form', { class: 'toolbar', id: 'job-form', onsubmit: (e) => {
        e.preventDefault();
        const q = input.value.trim();
        if (!q) return;
        history.pushState(null, '', base + '/jobs/' + encodeURIComponent(q));
        look(q);
      } }, input, el('button', { type: 'submit', id: 'job-find' }, 'Find')), out);
    function place(p) {
      const job = p.job || {};
      const lines = [el('span', { class: 'state ' + p.where }, p.where)];
      if (p.where === 'pending') lines.push(' ', p.position === 0 ? 'served next' : count(p.position, 'job', 'jobs') + ' ahead of it');
      if (p.where === 'delayed') lines.push(' due ', when(p.due));
      if (p.where === 'processing') {
        lines.push(' held by ', el('span', { class: 'mono' }, p.worker), ' ', el('span', { class: 'state ' + (p.worker_live ? 'live' : 'lapsed') }, p.worker_live ? 'live' : 'lease lapsed'));
        if (p.upload) lines.push(el('div', {}, progress({ upload: p.upload, size: job.file_size })));
      }
      if (p.where === 'failed') {
        lines.push(' at index ', p.position, ', ', when(p.failed_at), ', after ', text(p.attempts), ' attempts: ',
          el('div', { class: 'error', dataset: { field: 'error' } }, text(p.error)),
          el('a', { href: base + '/failed?grep=' + encodeURIComponent(job.sha256 || '') }, 'open in Failed'));
      }
      lines.push(el('pre', {}, JSON.stringify(job, null, 2)));
      return el('li', { dataset: { where: p.where } }, lines);
    }
    async function look(q) {
      if (timer) clearInterval(timer);
      let done = false;
      poll(async () => {
        if (done) return;
        let data;
        try {
          data = await api('/api/jobs/' + encodeURIComponent(q));
        } catch (e) {
          if (e.status === 400) { replace(out, el('p', { class: 'banner', id: 'job-error' }, e.message)); done = true; return; }
          throw e;
        }
        const row = data.row;
        replace(out,
          el('h2', {}, el('span', { class: 'mono' }, data.sha256), ' ', el('span', { class: 'state ' + data.state, id: 'job-state' }, data.state)),
          data.state === 'synced' ? el('p', { id: 'job-synced' }, 'Synced ', when(row.synced_at), ' to ', row.storage_box_id === null ? 'the default box (MINIO_ENDPOINT)' : 'box ' + row.storage_box_id, '.') : null,
          data.places.length ? el('ul', { class: 'places', id: 'job-places' }, data.places.map(place)) :
            el('p', { class: 'muted' }, 'Not in any queue of Redis.'),
          data.searched.complete ? null : el('p', { class: 'notice' }, 'The search stopped after ' + data.searched.entries + ' entries (time budget): the job may be further down pending.'),
          el('h2', {}, 'media_files row'),
          row ? el('div', { class: 'detail', id: 'job-row' }, el('dl', {},
            Object.entries(row).map(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, text(v))]))) :
            el('p', { class: 'muted', id: 'job-no-row' }, data.database_error ? 'PostgreSQL: ' + data.database_error : 'No media_files row for this sha256.'));
        done = data.state === 'synced';
      }, 10000);
    }
    if (query) look(query);
  }

  // ---- routing ----
  function route() {
    let path = location.pathname;
    if (base && path.startsWith(base)) path = path.slice(base.length);
    if (path === '' || path === '/') return ['overview', overview];
    if (path === '/failed') return ['failed', failed];
    if (path === '/workers') return ['workers', workers];
    if (path === '/boxes') return ['boxes', boxes];
    if (path === '/jobs') return ['jobs', () => jobs('')];
    if (path.startsWith('/jobs/')) return ['jobs', () => jobs(decodeURIComponent(path.slice(6)))];
    return ['none', () => replace(main, el('p', {}, 'No such page.'))];
  }
  async function start() {
    try { await loadSession(); } catch (e) { showError(e); }
    const [name, page] = route();
    for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === name);
    page();
  }
  window.addEventListener('popstate', start);
  start();
})();
