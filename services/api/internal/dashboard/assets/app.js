// The dashboard: the types list, a chosen type's summary and live chart, and
// the system panel. It reads only the public API. Live data comes from
// GET /api/metrics/series/stream, read with fetch() and a ReadableStream
// (not EventSource) so that an Authorization header can be sent when the
// api wants a key; every call answered 401 makes the page ask for one.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const WINDOWS = { "15m": "1m", "1h": "1m", "24h": "1m", "168h": "10m" }; // window -> step (<= 1440 points)
  const KEY = "ra.apiKey";
  const COUNT_TTL = 30e3, COUNTS_AT_ONCE = 4, COUNT_ROWS = 60;

  let lastSeries = null;
  const state = {
    types: [], counts: new Map(), selected: "", window: "1h",
    stream: null, retry: 0, needKey: false, lastUpdate: null,
  };

  class AuthError extends Error {}

  function headers() {
    const h = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  async function api(path, opts = {}) {
    const res = await fetch(path, { headers: headers(), signal: opts.signal, cache: "no-store" });
    if (res.status === 401) { askKey(); throw new AuthError("401"); }
    return res;
  }

  async function json(path, opts) {
    const res = await api(path, opts);
    let body = null;
    try { body = await res.json(); } catch { /* a body that is not JSON: report the status only */ }
    return { status: res.status, ok: res.ok, body };
  }

  // ---- formatting

  const fmtInt = new Intl.NumberFormat();
  const num = (v) => (v === null || v === undefined ? "–" : RAChart.fmtValue(v));
  function ago(iso) {
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!isFinite(s)) return "–";
    if (s < 5) return "just now";
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 86400) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) : "–");
  const text = (el, s, cls) => { el.textContent = s; el.className = cls || ""; };
  function idle(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 120e3) return Math.round(ms / 1000) + " s";
    return Math.round(ms / 60e3) + " min";
  }

  // ---- API key

  function askKey() {
    if (state.needKey) return;
    state.needKey = true;
    $("key-form").hidden = false;
    $("key-button").hidden = false;
    $("key-input").focus();
    setLive("error", "needs a key");
  }

  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    state.needKey = false;
    refreshAll();
  });
  $("key-forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); $("key-input").value = ""; });
  $("key-button").addEventListener("click", () => { $("key-form").hidden = !$("key-form").hidden; });

  // ---- types

  async function loadTypes() {
    if (state.needKey) return;
    try {
      const all = [];
      let cursor = "";
      for (let page = 0; page < 10; page++) {
        const r = await json("/api/metrics/types?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
        if (!r.ok) { typesMessage("The types could not be read (" + r.status + "); retrying."); return; }
        all.push(...r.body.types);
        if (!r.body.next_cursor) break;
        cursor = r.body.next_cursor;
      }
      state.types = all;
      renderTypes();
      if (!state.selected && all.length) select(all[0].type);
    } catch (err) {
      if (!(err instanceof AuthError)) typesMessage("The api did not answer; retrying.");
    }
  }

  function typesMessage(msg, code) {
    const p = $("types-empty");
    p.hidden = false;
    p.textContent = msg;
    if (code) { const c = document.createElement("code"); c.textContent = code; p.append(c); }
  }

  function renderTypes() {
    const f = $("filter").value.trim().toLowerCase();
    const shown = state.types.filter((t) => t.type.toLowerCase().includes(f));
    const body = $("types");
    body.replaceChildren(...shown.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.type = t.type;
      tr.setAttribute("aria-selected", String(t.type === state.selected));
      tr.tabIndex = 0;
      const c = state.counts.get(t.type);
      const name = document.createElement("td"); name.textContent = t.type;
      const count = document.createElement("td"); count.className = "num count"; count.textContent = c ? fmtInt.format(c.count) : "…";
      const seen = document.createElement("td"); seen.className = "num"; seen.textContent = ago(t.last_seen); seen.title = when(t.last_seen);
      tr.append(name, count, seen);
      return tr;
    }));
    $("types-total").textContent = state.types.length ? (shown.length === state.types.length ? state.types.length : shown.length + " of " + state.types.length) : "";
    const empty = $("types-empty");
    if (!state.types.length) {
      typesMessage("No metrics yet. Post one:", `curl -X POST ${location.origin}/api/metrics -H 'Content-Type: application/json' -d '{"timestamp":"${new Date().toISOString().slice(0, 19)}Z","value":42,"type":"cpu_usage"}'`);
    } else if (!shown.length) {
      typesMessage("No type matches the filter.");
    } else {
      empty.hidden = true;
    }
    loadCounts(shown.slice(0, COUNT_ROWS));
    mark("ra-types");
  }

  // Marks the first time a view shows data, for performance.getEntriesByName.
  const marked = new Set();
  function mark(name) { if (!marked.has(name)) { marked.add(name); performance.mark(name); } }

  // Counts come from the all-time summaries (cached by the api), fetched
  // only for the rows on screen and at most every COUNT_TTL per type.
  let counting = false;
  async function loadCounts(rows) {
    if (counting || state.needKey) return;
    counting = true;
    try {
      const due = rows.filter((t) => { const c = state.counts.get(t.type); return !c || Date.now() - c.at > COUNT_TTL; });
      for (let i = 0; i < due.length; i += COUNTS_AT_ONCE) {
        await Promise.all(due.slice(i, i + COUNTS_AT_ONCE).map(async (t) => {
          const r = await json("/api/metrics/summary?type=" + encodeURIComponent(t.type));
          if (r.ok) setCount(t.type, r.body.count);
        }));
      }
    } catch { /* the next refresh retries */ } finally { counting = false; }
  }

  function setCount(type, count) {
    const prev = state.counts.get(type);
    // The live stream reads fresh and the summary endpoint may be up to CACHE_TTL old: never go back.
    state.counts.set(type, { count: prev ? Math.max(prev.count, count) : count, at: Date.now() });
    const cell = document.querySelector(`#types tr[data-type="${CSS.escape(type)}"] .count`);
    if (cell) cell.textContent = fmtInt.format(state.counts.get(type).count);
  }

  $("filter").addEventListener("input", renderTypes);
  $("types").addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) select(tr.dataset.type); });
  $("types").addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { const tr = e.target.closest("tr"); if (tr) { e.preventDefault(); select(tr.dataset.type); } }
  });

  // ---- the chosen type

  function select(type, win) {
    state.selected = type;
    if (win && WINDOWS[win]) state.window = win;
    history.replaceState(null, "", "#" + new URLSearchParams({ type, window: state.window }));
    for (const tr of $("types").children) tr.setAttribute("aria-selected", String(tr.dataset.type === type));
    for (const b of $("windows").children) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
    if ($("type-h").textContent !== type) {
      $("type-h").textContent = type;
      renderSummary(null);
      $("chart").replaceChildren();
      $("chart-window").textContent = "";
    }
    lastSeries = null;
    stream();
  }

  $("windows").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b && state.selected) select(state.selected, b.dataset.window);
    else if (b) { state.window = b.dataset.window; for (const x of $("windows").children) x.setAttribute("aria-pressed", String(x === b)); }
  });

  function setLive(s, label) { const p = $("live"); p.dataset.state = s; p.textContent = label || s; }

  function detailMessage(msg) { const p = $("detail-msg"); p.hidden = !msg; p.textContent = msg || ""; }

  // stream follows the chosen type and window until another is chosen; it
  // reconnects on its own after an error or the server going away.
  async function stream() {
    if (state.stream) state.stream.abort();
    clearTimeout(state.retry);
    if (state.needKey || !state.selected) return;
    const ctl = new AbortController();
    state.stream = ctl;
    const q = new URLSearchParams({ type: state.selected, window: state.window, step: WINDOWS[state.window] });
    setLive("connecting");
    let wait = 3000;
    try {
      const res = await api("/api/metrics/series/stream?" + q, { signal: ctl.signal });
      if (!res.ok) {
        let detail = "";
        try { detail = (await res.json()).detail || ""; } catch { /* not a problem body */ }
        wait = (Number(res.headers.get("Retry-After")) || 3) * 1000;
        setLive("retrying", "live: " + res.status);
        detailMessage(detail);
      } else {
        setLive("live");
        await readEvents(res.body, onEvent);
        if (!ctl.signal.aborted) setLive("retrying", "reconnecting");
      }
    } catch (err) {
      if (ctl.signal.aborted || err instanceof AuthError) return;
      setLive("retrying", "reconnecting");
    }
    if (!ctl.signal.aborted && state.stream === ctl) state.retry = setTimeout(stream, wait);
  }

  // readEvents parses a text/event-stream body ("event:" and "data:" lines,
  // a blank line ends an event, ":" lines are comments such as heartbeats).
  async function readEvents(body, on) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) on(name, JSON.parse(data.join("\n")));
      }
    }
  }

  function onEvent(name, data) {
    if (name === "update") {
      if (data.series.type !== state.selected) return; // from a stream being replaced
      detailMessage("");
      state.lastUpdate = Date.now();
      renderSummary(data.summary);
      lastSeries = data.series;
      renderChart();
    } else if (name === "problem") {
      detailMessage(data.status === 404 ? "No metric of this type has been aggregated yet." : data.detail || data.title);
    } else if (name === "shutdown") {
      setLive("retrying", "api restarting");
    }
  }

  function renderSummary(s) {
    const v = s || {};
    text($("sum-count"), s ? fmtInt.format(v.count) : "–");
    text($("sum-avg"), num(v.average_value));
    text($("sum-min"), num(v.min_value));
    text($("sum-max"), num(v.max_value));
    text($("sum-sum"), num(v.sum));
    text($("sum-first"), when(v.first_timestamp));
    text($("sum-last"), when(v.last_timestamp));
    if (s) setCount(s.type, s.count);
  }

  function renderChart() {
    if (!lastSeries) return;
    RAChart.render($("chart"), lastSeries);
    mark("ra-chart");
    const n = lastSeries.points.reduce((a, p) => a + p.count, 0);
    const label = state.window === "168h" ? "7d" : state.window;
    $("chart-window").textContent = `${fmtInt.format(n)} metric${n === 1 ? "" : "s"} in the last ${label} · step ${lastSeries.step}`;
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderChart, 100); });

  // ---- system

  async function loadSystem() {
    if (state.needKey) return;
    try {
      const [sys, health] = await Promise.all([json("/api/system"), json("/health")]);
      const h = health.body || {};
      text($("sys-api"), health.ok ? "ok" : "unavailable", health.ok ? "ok" : "bad");
      if (sys.ok) {
        const s = sys.body;
        text($("sys-redis"), s.redis === "ok" ? "ok" : "failing", s.redis === "ok" ? "ok" : "bad");
        $("sys-redis").title = s.redis;
        const dur = h.durability || (s.durability !== "unknown" && s.durability) || "unknown";
        text($("sys-durability"), dur, dur === "always" ? "ok" : dur === "unknown" ? "" : "warn");
        text($("sys-breaker"), s.circuit_state, { CLOSED: "ok", OPEN: "bad", HALF_OPEN: "warn" }[s.circuit_state] || "");
        text($("sys-lag"), s.lag === null ? "unknown" : fmtInt.format(s.lag), s.lag === null ? "warn" : s.lag > 1000 ? "warn" : "ok");
        text($("sys-pending"), fmtInt.format(s.pending));
        const groups = s.groups || [];
        $("sys-lag").title = groups.map((g) => `partition ${g.partition}: ${g.exists ? (g.lag === null ? "unknown" : g.lag) : "no group yet"}`).join("\n");
        const rows = groups.flatMap((g) => g.consumers.map((c) => {
          const tr = document.createElement("tr");
          for (const [v, cls] of [[groups.length > 1 ? `${c.name} (p${g.partition})` : c.name, ""], [fmtInt.format(c.pending), "num"], [idle(c.idle_ms), "num"]]) {
            const td = document.createElement("td"); td.textContent = v; td.className = cls; tr.append(td);
          }
          return tr;
        }));
        if (!rows.length) {
          const tr = document.createElement("tr"), td = document.createElement("td");
          td.colSpan = 3; td.className = "muted"; td.textContent = s.groups_error ? "groups unreadable: " + s.groups_error : "no aggregator has joined yet";
          tr.append(td); rows.push(tr);
        }
        $("consumers").replaceChildren(...rows);
        $("sys-group").textContent = `group “${s.group}” on ${groups.length || "?"} partition${groups.length === 1 ? "" : "s"}`;
      } else {
        text($("sys-redis"), "–");
        text($("sys-breaker"), "–");
      }
      $("sys-updated").textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
    } catch (err) {
      if (!(err instanceof AuthError)) text($("sys-api"), "unreachable", "bad");
    }
  }

  // ---- start

  function refreshAll() {
    loadTypes();
    loadSystem();
    if (state.selected) stream();
  }

  const hash = new URLSearchParams(location.hash.slice(1));
  if (WINDOWS[hash.get("window")]) state.window = hash.get("window");
  for (const b of $("windows").children) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
  if (hash.get("type")) select(hash.get("type"));
  loadTypes();
  loadSystem();
  setInterval(loadTypes, 10e3);
  setInterval(loadSystem, 5e3);
})();
