// gradtone's player: interleaved chunks in, a small jitter buffer, one output with the stream's
// channels. Live mode keeps latency low (drops the oldest audio past MAX seconds) and starts a
// step as soon as it is whole: at BUFFER seconds queued, or HOLD seconds after it arrived when
// no more is coming (a slow model's steps arrive one at a time, each shorter than the buffer:
// waiting for the buffer would hold each one until the next, and the last one for ever).
// Replay mode plays everything queued.
class GradtonePlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.channels = o.channels || 1;
    this.target = Math.round((o.bufferSeconds || 0.08) * sampleRate) * this.channels;
    this.max = Math.round((o.maxSeconds || 0.5) * sampleRate) * this.channels;
    this.hold = Math.round((o.holdSeconds || 0.02) * sampleRate);
    this.waited = 0; // frames the queue has waited to start
    this.queue = [];
    this.pos = 0; // read position in queue[0]
    this.queued = 0; // interleaved samples queued
    this.playing = false;
    this.live = true;
    this.played = 0;
    this.underruns = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.reset) { this.queue = []; this.pos = 0; this.queued = 0; this.playing = false; this.waited = 0; this.live = m.live; return; }
      const ahead = this.queued;
      this.queue.push(m.samples);
      this.queued += m.samples.length;
      if (this.live) {
        while (this.queued > this.max && this.queue.length > 1) {
          this.queued -= this.queue[0].length - this.pos;
          this.queue.shift();
          this.pos = 0;
        }
      }
      if (m.id !== undefined) this.port.postMessage({ id: m.id, ahead });
    };
  }
  process(inputs, outputs) {
    const out = outputs[0];
    const n = out[0].length;
    const ch = this.channels;
    if (!this.playing && this.queued >= ch) {
      if (!this.live || this.queued >= this.target || this.waited >= this.hold) { this.playing = true; this.waited = 0; } else this.waited += n;
    }
    for (let i = 0; i < n; i++) {
      if (!this.playing || this.queued < ch) {
        if (this.playing) { this.playing = false; this.underruns++; }
        for (let c = 0; c < out.length; c++) out[c][i] = 0;
        continue;
      }
      const buf = this.queue[0];
      for (let c = 0; c < out.length; c++) out[c][i] = buf[this.pos + Math.min(c, ch - 1)];
      this.pos += ch;
      this.queued -= ch;
      this.played += ch;
      if (this.pos >= buf.length) { this.queue.shift(); this.pos = 0; }
    }
    return true;
  }
}
registerProcessor('gradtone-player', GradtonePlayer);
