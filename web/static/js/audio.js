// WebAudio: one shared context for the ringtone, the ringback tone and the level meters.

let context = null;

/** The shared AudioContext, created on first use; resumed where the browser allows it (user gesture). */
export function audioContext() {
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return null;
  if (!context) context = new Ctor();
  if (context.state === 'suspended') context.resume().catch(() => {});
  return context;
}

/** Call from any click/keydown handler so later sounds (an incoming ring) may play. */
export function unlockAudio() {
  const ctx = audioContext();
  if (ctx && ctx.state === 'suspended') ctx.resume().catch(() => {});
}

/**
 * A repeating tone pattern: [[freqA, freqB, seconds on], ...] followed by a silence, looped until stop().
 * Ringtone: two-tone warble; ringback: the quiet "brr-brr" a caller hears while it rings.
 */
class TonePattern {
  constructor(bursts, pause, volume) {
    this.bursts = bursts;
    this.pause = pause;
    this.volume = volume;
    this.timer = null;
    this.nodes = [];
  }

  start() {
    if (this.timer) return;
    const ctx = audioContext();
    if (!ctx) return;
    const cycle = this.bursts.reduce((sum, [, , on, gap = 0.1]) => sum + on + gap, 0) + this.pause;
    const play = () => {
      let t = ctx.currentTime + 0.05;
      for (const [f1, f2, on, gap = 0.1] of this.bursts) {
        this.beep(ctx, f1, f2, t, on);
        t += on + gap;
      }
    };
    play();
    this.timer = setInterval(play, cycle * 1000);
    if (navigator.vibrate && this.volume > 0.1) navigator.vibrate([400, 200, 400]);
  }

  beep(ctx, f1, f2, at, duration) {
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(this.volume, at + 0.02);
    gain.gain.setValueAtTime(this.volume, at + duration - 0.03);
    gain.gain.linearRampToValueAtTime(0, at + duration);
    gain.connect(ctx.destination);
    for (const freq of [f1, f2]) {
      const osc = ctx.createOscillator();
      osc.type = 'sine';
      osc.frequency.value = freq;
      osc.connect(gain);
      osc.start(at);
      osc.stop(at + duration);
      this.nodes.push(osc);
      osc.onended = () => {
        this.nodes = this.nodes.filter((n) => n !== osc);
      };
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    for (const node of this.nodes) {
      try {
        node.stop();
      } catch {
        // already stopped
      }
    }
    this.nodes = [];
    if (navigator.vibrate) navigator.vibrate(0);
  }
}

export const ringtone = new TonePattern([[880, 1320, 0.35, 0.12], [880, 1320, 0.35, 0.12]], 1.6, 0.22);
export const ringback = new TonePattern([[440, 480, 1.2, 0.1]], 2.8, 0.06);

/**
 * A level meter for a MediaStream: calls onLevel(0..1) about 15 times a second until stop().
 * Chrome only feeds a remote WebRTC stream to WebAudio while it also plays in a media element.
 */
export function meterFor(stream, onLevel) {
  const ctx = audioContext();
  if (!ctx || !stream || !stream.getAudioTracks().length) return () => {};
  let source;
  try {
    source = ctx.createMediaStreamSource(stream);
  } catch {
    return () => {};
  }
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  let smoothed = 0;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const sample of data) sum += sample * sample;
    const rms = Math.sqrt(sum / data.length);
    // Map roughly -60..0 dBFS onto 0..1, then smooth so the bar does not flicker.
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.min(1, Math.max(0, (db + 60) / 60));
    smoothed = level > smoothed ? level : smoothed * 0.8 + level * 0.2;
    onLevel(smoothed);
  }, 66);
  return () => {
    clearInterval(timer);
    try {
      source.disconnect();
      analyser.disconnect();
    } catch {
      // already disconnected
    }
  };
}
