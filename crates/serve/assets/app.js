// gradtone's page: receives the run over a WebSocket (a hello with the history, then live
// points, alarms and audio), draws the chart, plays the audio through an AudioWorklet.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
    '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];
  const S = {
    rate: 44100, channels: 1, names: [], lossName: null, points: [], stride: 1, chartCap: 4096,
    alarms: [], done: false, connected: false, hellos: 0,
    rec: new Float32Array(0), recLen: 0, recCap: 0, recFull: false, chunks: 0, gaps: 0, expected: 0,
    latencies: [], netDelays: [],
  };
  let ctx = null, node = null, gain = null, muted = false, live = false, nextId = 0;
  const pending = new Map();
  // Audio that arrives while the AudioContext starts (a page opened with autoplay, or a click):
  // played once the player is ready, so the first step is heard too.
  let early = null;
  let dirty = true;

  const num = (v) => (typeof v === 'number' ? v : v === 'nan' || v === null ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : NaN);
  const point = (p) => ({ step: p.step, loss: p.loss === null || p.loss === undefined ? null : num(p.loss), v: p.v.map(num) });
  const worst = (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
  function addPoint(p) {
    S.points.push(p);
    if (S.points.length >= S.chartCap) { // the server's rule: pairs merged, spikes kept
      const m = [];
      for (let i = 0; i < S.points.length; i += 2) {
        const a = S.points[i], b = S.points[i + 1];
        if (!b) { m.push(a); continue; }
        m.push({ step: a.step, loss: a.loss === null ? b.loss : b.loss === null ? a.loss : worst(a.loss, b.loss), v: a.v.map((x, k) => worst(x, b.v[k])) });
      }
      S.points = m;
      S.stride *= 2;
    }
    dirty = true;
  }

  function record(offset, samples) {
    if (offset !== S.expected) S.gaps++;
    S.expected = offset + samples.length;
    const end = offset + samples.length;
    if (S.recFull) return;
    if (end > S.recCap) { S.recFull = true; return; }
    if (end > S.rec.length) {
      const n = new Float32Array(Math.min(S.recCap, Math.max(end, S.rec.length * 2, 1 << 16)));
      n.set(S.rec.subarray(0, S.recLen));
      S.rec = n;
    }
    S.rec.set(samples, offset);
    S.recLen = Math.max(S.recLen, end);
  }

  function onAudio(buf) {
    const h = new DataView(buf, 0, 24);
    const offset = h.getFloat64(0, true), sentMs = h.getFloat64(8, true);
    const samples = new Float32Array(buf, 24);
    S.chunks++;
    record(offset, samples);
    const net = Date.now() - sentMs;
    if (S.netDelays.length < 10000) S.netDelays.push(net);
    if (node && live) {
      const id = nextId++;
      pending.set(id, net);
      node.port.postMessage({ samples, id });
    } else if (early && net < 250 && early.length < 256) early.push(samples); // live, not history
  }

  function onText(m) {
    if (m.t === 'hello') {
      S.hellos++;
      S.rate = m.rate; S.channels = m.channels; S.names = m.names; S.lossName = m.loss;
      S.points = []; S.stride = m.stride; S.chartCap = m.chart_cap; S.alarms = m.alarms; S.done = m.done;
      S.recCap = m.audio_cap; S.rec = new Float32Array(0); S.recLen = 0; S.recFull = false; S.expected = 0; S.gaps = 0;
      m.points.forEach((p) => S.points.push(point(p)));
      $('title').textContent = m.title;
      document.title = 'gradtone: ' + m.title;
      legend(); alarmsText(); dirty = true;
      if (params.get('autoplay') === '1' && !ctx) start();
    } else if (m.t === 'points') { // the rest of the hello's chart history
      m.points.forEach((p) => S.points.push(point(p)));
      dirty = true;
    } else if (m.t === 'names') {
      S.names = m.names; S.lossName = m.loss; legend(); dirty = true;
    } else if (m.t === 'point') {
      addPoint(point(m.p));
    } else if (m.t === 'alarm') {
      S.alarms.push(m.a);
      if (S.alarms.length > 1000) S.alarms.shift();
      alarmsText(); dirty = true;
    } else if (m.t === 'done') {
      S.done = true; status();
    }
  }

  function status() {
    const last = S.points.length ? S.points[S.points.length - 1].step : '-';
    $('status').textContent = (S.connected ? 'connected' : 'disconnected') + (S.done ? ', run finished' : '') +
      ` · step ${last} · ${S.points.length} points` + (S.stride > 1 ? ` (1 per ${S.stride} steps)` : '') +
      (ctx ? (live ? ' · playing live' : ' · replaying') : '');
    $('start').textContent = ctx ? (S.done ? '↺ Replay' : '▶ Live') : (S.done ? '▶ Play run' : '▶ Start sound');
  }

  function legend() {
    const el = $('legend');
    el.textContent = '';
    S.names.forEach((n, i) => {
      const s = document.createElement('span');
      s.style.setProperty('--c', COLORS[i % COLORS.length]);
      s.textContent = n;
      el.appendChild(s);
    });
    if (S.lossName) {
      const s = document.createElement('span');
      s.style.setProperty('--c', '#000');
      s.textContent = S.lossName + ' (lower panel)';
      el.appendChild(s);
    }
  }

  function alarmsText() {
    $('alarms').textContent = S.alarms.map((a) => `step ${a.step}: ${a.message}`).join('\n');
  }

  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' + location.search);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => { S.connected = true; status(); };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') onText(JSON.parse(e.data)); else onAudio(e.data);
    };
    ws.onclose = () => {
      S.connected = false; status();
      if (!S.done) setTimeout(connect, 2000);
    };
  }

  async function start() {
    if (!ctx) {
      early = [];
      ctx = new AudioContext({ sampleRate: S.rate, latencyHint: 'interactive' });
      await ctx.audioWorklet.addModule('worklet.js' + location.search);
      node = new AudioWorkletNode(ctx, 'gradtone-player', {
        numberOfInputs: 0, outputChannelCount: [S.channels],
        processorOptions: { channels: S.channels, bufferSeconds: 0.08, holdSeconds: 0.02, maxSeconds: 0.5 },
      });
      node.port.onmessage = (e) => {
        const net = pending.get(e.data.id);
        pending.delete(e.data.id);
        if (net === undefined || S.latencies.length >= 10000) return;
        const out = ((ctx.baseLatency || 0) + (ctx.outputLatency || 0)) * 1000;
        S.latencies.push(net + (e.data.ahead / S.channels / S.rate) * 1000 + out);
      };
      gain = new GainNode(ctx, { gain: muted ? 0 : Number($('volume').value) });
      node.connect(gain).connect(ctx.destination);
      $('mute').disabled = false;
    }
    await ctx.resume();
    live = !S.done;
    node.port.postMessage({ reset: true, live });
    if (live && early) early.forEach((samples) => node.port.postMessage({ samples }));
    early = null;
    if (!live) {
      const step = S.rate * S.channels;
      for (let i = 0; i < S.recLen; i += step) node.port.postMessage({ samples: S.rec.slice(i, Math.min(S.recLen, i + step)) });
    }
    status();
  }

  $('start').onclick = () => { start(); };
  $('mute').onclick = () => {
    muted = !muted;
    if (gain) gain.gain.value = muted ? 0 : Number($('volume').value);
    $('mute').textContent = muted ? 'Unmute' : 'Mute';
  };
  $('volume').oninput = () => { if (gain && !muted) gain.gain.value = Number($('volume').value); };

  function draw() {
    const c = $('chart');
    const w = c.clientWidth, h = c.clientHeight, dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '11px sans-serif';
    const L = 60, R = 12, top = 10, split = Math.round(h * 0.64), bottom = h - 22;
    const P = S.points;
    if (!P.length) { g.fillStyle = '#888'; g.fillText('waiting for the first step…', L, 40); return; }
    const x0 = P[0].step, x1 = Math.max(P[P.length - 1].step, x0 + 1);
    const X = (s) => L + ((s - x0) / (x1 - x0)) * (w - L - R);
    const panel = (y0, y1, series, label) => {
      let lo = Infinity, hi = -Infinity;
      series.forEach((ys) => ys.forEach((v) => { if (v > 0 && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }));
      g.strokeStyle = '#ccc'; g.strokeRect(L, y0, w - L - R, y1 - y0);
      g.fillStyle = '#444'; g.fillText(label, L + 6, y0 + 12);
      if (!(lo <= hi)) return;
      let a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
      if (a === b) b = a + 1;
      const Y = (v) => y1 - ((Math.log10(v) - a) / (b - a)) * (y1 - y0);
      g.fillStyle = '#666';
      for (let d = a; d <= b; d++) {
        const y = Y(10 ** d);
        g.strokeStyle = '#eee'; g.beginPath(); g.moveTo(L, y); g.lineTo(w - R, y); g.stroke();
        g.fillText('1e' + d, 8, y + 4);
      }
      return Y;
    };
    const voices = S.names.map((_, i) => P.map((p) => p.v[i]));
    const Yv = panel(top, split - 8, voices, 'norm (log)');
    if (Yv) voices.forEach((ys, i) => {
      g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 1.5; g.beginPath();
      let pen = false;
      ys.forEach((v, k) => {
        if (!(v > 0 && Number.isFinite(v))) { pen = false; return; }
        const x = X(P[k].step), y = Yv(v);
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        pen = true;
      });
      if (ys.length === 1 && ys[0] > 0) g.arc(X(P[0].step), Yv(ys[0]), 2, 0, 7);
      g.stroke();
    });
    const losses = P.map((p) => p.loss);
    const Yl = panel(split + 4, bottom, [losses], (S.lossName || 'loss') + ' (log)');
    if (Yl) {
      g.strokeStyle = '#000'; g.lineWidth = 1.5; g.beginPath();
      let pen = false;
      losses.forEach((v, k) => {
        if (!(v > 0 && Number.isFinite(v))) { pen = false; return; }
        const x = X(P[k].step), y = Yl(v);
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        pen = true;
      });
      g.stroke();
    }
    g.lineWidth = 1;
    S.alarms.forEach((a) => {
      if (a.step < x0) return;
      const x = X(a.step);
      g.strokeStyle = 'rgba(200,0,0,0.6)'; g.beginPath(); g.moveTo(x, top); g.lineTo(x, bottom); g.stroke();
      g.fillStyle = '#a00'; g.fillText(a.kind, x + 2, top + 10);
    });
    g.fillStyle = '#444';
    g.fillText('step ' + x0, L, h - 6);
    const t = 'step ' + P[P.length - 1].step;
    g.fillText(t, w - R - g.measureText(t).width, h - 6);
  }

  function frame() {
    if (dirty) { dirty = false; draw(); status(); }
    requestAnimationFrame(frame);
  }
  // Headless or hidden tabs throttle animation frames: a timer keeps the chart current too.
  setInterval(() => { if (dirty) { dirty = false; draw(); status(); } }, 250);
  requestAnimationFrame(frame);
  connect();

  // For tests and the curious: the page's view of the run.
  const stats = (v) => (v.length ? { n: v.length, mean: v.reduce((a, b) => a + b, 0) / v.length, max: Math.max(...v), p95: v.slice().sort((a, b) => a - b)[Math.floor(v.length * 0.95)] } : { n: 0 });
  window.gradtone = {
    state: () => ({
      connected: S.connected, done: S.done, hellos: S.hellos, rate: S.rate, channels: S.channels,
      names: S.names, steps: S.points.map((p) => p.step), alarms: S.alarms.length,
      samples: S.recLen, chunks: S.chunks, gaps: S.gaps, recFull: S.recFull,
      audio: ctx ? ctx.state : 'none', playing: live,
      latencyMs: stats(S.latencies), netDelayMs: stats(S.netDelays),
    }),
    recording: () => {
      const b = new Uint8Array(S.rec.buffer, 0, S.recLen * 4);
      let s = '';
      for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
      return btoa(s);
    },
  };
})();
