// Media watchdog, during an answered call: inbound audio packets are counted every CHECK_EVERY_MS; when none
// arrived for STALL_AFTER_MS the network may have changed under us, long before ICE or TCP say so (a phone
// roaming to another subnet). It only tells: recovery.js decides what a stall means. Once per stall: it fires
// again only after packets flowed again.

const CHECK_EVERY_MS = 500;
const STALL_AFTER_MS = 2000;

/** Audio packets received so far on ``pc`` (every inbound audio stream), or null when it cannot tell. */
async function inboundPackets(pc) {
  if (pc.signalingState === 'closed') return null;
  let report;
  try {
    report = await pc.getStats();
  } catch {
    return null;
  }
  let packets = null;
  report.forEach((entry) => {
    if (entry.type === 'inbound-rtp' && (entry.kind || entry.mediaType) === 'audio') packets = (packets || 0) + (entry.packetsReceived || 0);
  });
  return packets;
}

export class MediaWatchdog {
  /**
   * Watch ``pc``; ``onStall(silentMs)`` runs when audio stops, ``onFlow(silentMs)`` when it comes back after a
   * stall. Call stop() when the call ends.
   */
  constructor(pc, {onStall, onFlow}) {
    this.packets = null;
    this.grewAt = Date.now();
    this.stalled = false;
    this.stalls = 0;
    let busy = false;
    this.timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const packets = await inboundPackets(pc);
        if (packets === null || this.timer === null) return;
        const now = Date.now();
        if (this.packets === null || packets > this.packets) {
          if (this.stalled) onFlow(now - this.grewAt);
          this.packets = packets;
          this.grewAt = now;
          this.stalled = false;
        } else if (!this.stalled && now - this.grewAt >= STALL_AFTER_MS) {
          this.stalled = true;
          this.stalls += 1;
          onStall(now - this.grewAt);
        }
      } finally {
        busy = false;
      }
    }, CHECK_EVERY_MS);
  }

  /** What it has seen, for window.opencall.phone.recovery(). */
  state() {
    return {packets: this.packets, stalled: this.stalled, stalls: this.stalls, silentMs: Date.now() - this.grewAt};
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
