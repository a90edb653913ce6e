// A small SVG line chart for one series of the api: the average per step as
// a line, the min–max range as a band behind it, a dot per step with data,
// and a gap wherever a step has no metric (count 0), so an empty minute is
// never drawn as a false zero. No dependencies.
"use strict";

const RAChart = (() => {
  const MIN = 60e3, HOUR = 60 * MIN, DAY = 24 * HOUR;
  const TIME_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY];
  const DENSE = 120; // beyond this many dots they shrink to keep the line readable

  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  function niceStep(span, ticks) {
    const raw = span / Math.max(ticks, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function valueTicks(lo, hi, n) {
    if (lo === hi) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
    const step = niceStep(hi - lo, n);
    const start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let v = start; v <= end + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return { lo: start, hi: end, ticks };
  }

  const fmtCompact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });
  const fmtPlain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
  const fmtValue = (v) => (Math.abs(v) >= 1e5 ? fmtCompact : fmtPlain).format(v);

  // Ticks at round local times (whole minutes, hours, midnights).
  function timeTicks(from, to, maxTicks) {
    const span = to - from;
    const step = TIME_STEPS.find((s) => span / s <= maxTicks) || 7 * DAY;
    const off = new Date(from).getTimezoneOffset() * MIN;
    const ticks = [];
    for (let t = Math.ceil((from - off) / step) * step + off; t <= to; t += step) ticks.push(t);
    return { step, ticks };
  }

  function timeLabel(t, step, span) {
    const d = new Date(t);
    const hm = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
    if (step >= DAY) return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" });
    if (span > DAY && d.getHours() === 0 && d.getMinutes() === 0) return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" });
    return hm;
  }

  // render draws series ({from, to, step, points}) into el, sized to el's width.
  function render(el, series) {
    const width = Math.max(el.clientWidth || 600, 280);
    const height = width < 520 ? 220 : 300;
    const from = Date.parse(series.from), to = Date.parse(series.to);
    const points = series.points || [];
    const stepMs = points.length ? (to - from) / points.length : MIN;
    const data = [];
    points.forEach((p, i) => { if (p.count > 0 && p.average_value !== null) data.push({ i, p, t: Date.parse(p.t) }); });

    let lo = Infinity, hi = -Infinity;
    for (const d of data) { lo = Math.min(lo, d.p.min_value); hi = Math.max(hi, d.p.max_value); }
    if (!data.length) { lo = 0; hi = 1; }
    const yt = valueTicks(lo, hi, height < 250 ? 4 : 5);
    const labelW = Math.max(...yt.ticks.map((v) => fmtValue(v).length)) * 6.8 + 10;
    const m = { top: 10, right: 14, bottom: 26, left: Math.ceil(labelW) };
    const iw = width - m.left - m.right, ih = height - m.top - m.bottom;
    const x = (t) => m.left + ((t - from) / (to - from)) * iw;
    const y = (v) => m.top + ih - ((v - yt.lo) / (yt.hi - yt.lo)) * ih;
    const mid = (d) => x(d.t + stepMs / 2);

    const out = [];
    out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" data-points="${data.length}" aria-label="${esc(series.type)}: ${data.length} steps with data">`);
    out.push('<g class="axis">');
    for (const v of yt.ticks) {
      const yy = y(v).toFixed(1);
      out.push(`<line class="grid-line" x1="${m.left}" x2="${width - m.right}" y1="${yy}" y2="${yy}"/>`);
      out.push(`<text x="${m.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(fmtValue(v))}</text>`);
    }
    const tt = timeTicks(from, to, Math.max(2, Math.floor(iw / 80)));
    for (const t of tt.ticks) {
      const xx = x(t).toFixed(1);
      out.push(`<line class="grid-line" x1="${xx}" x2="${xx}" y1="${m.top}" y2="${m.top + ih + 4}"/>`);
      out.push(`<text x="${xx}" y="${height - 6}" text-anchor="middle">${esc(timeLabel(t, tt.step, to - from))}</text>`);
    }
    out.push("</g>");

    // Runs of consecutive steps with data; an empty step ends a run.
    const runs = [];
    for (const d of data) {
      const run = runs[runs.length - 1];
      if (run && run[run.length - 1].i === d.i - 1) run.push(d); else runs.push([d]);
    }
    for (const run of runs) {
      if (run.length < 2) continue;
      const top = run.map((d) => `${mid(d).toFixed(1)},${y(d.p.max_value).toFixed(1)}`);
      const bottom = run.slice().reverse().map((d) => `${mid(d).toFixed(1)},${y(d.p.min_value).toFixed(1)}`);
      out.push(`<polygon class="band" points="${top.concat(bottom).join(" ")}"/>`);
      out.push(`<polyline class="line" points="${run.map((d) => `${mid(d).toFixed(1)},${y(d.p.average_value).toFixed(1)}`).join(" ")}"/>`);
    }
    const dense = data.length > DENSE;
    for (const d of data) {
      const when = new Date(d.t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
      const tip = `${when}: avg ${fmtValue(d.p.average_value)}, min ${fmtValue(d.p.min_value)}, max ${fmtValue(d.p.max_value)}, ${d.p.count} metric${d.p.count === 1 ? "" : "s"}`;
      out.push(`<circle class="pt${dense ? " dense" : ""}" cx="${mid(d).toFixed(1)}" cy="${y(d.p.average_value).toFixed(1)}" r="${dense ? 1.6 : 3}" data-t="${esc(d.p.t)}" data-count="${d.p.count}"><title>${esc(tip)}</title></circle>`);
    }
    if (!data.length) {
      out.push(`<text class="none" x="${m.left + iw / 2}" y="${m.top + ih / 2}" text-anchor="middle">no metrics in this window</text>`);
    }
    out.push("</svg>");
    el.innerHTML = out.join("");
  }

  return { render, fmtValue };
})();
