// gradtone's player: interleaved chunks in, a small jitter buffer, one output with the stream's
// channels. Live mode keeps latency low (drops the oldest audio past MAX seconds); replay
// mode plays everything queued.
class GradtonePlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.channels = o.channels || 1;
    this.target = Math.round((o.bufferSeconds || 0.08) * sampleRate) * this.channels;
    this.max = Math.round((o.maxSeconds || 0.5) * sampleRate) * this.channels;
    this.queue = [];
    this.pos = 0; // read position in queue[0]
    this.queued = 0; // interleaved samples queued
    this.playing = false;
    this.live = true;
    this.played = 0;
    this.underruns = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.reset) { this.queue = []; this.pos = 0; this.queued = 0; this.playing = false; this.live = m.live; return; }
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
    if (!this.playing && this.queued >= Math.min(this.target, this.live ? this.target : 1)) this.playing = true;
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
