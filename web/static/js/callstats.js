// The call screen's connection quality, from `pc.getStats()` (docs/web.md): the route (direct or relayed), the
// round-trip time, the loss since the last reading, and a good/fair/poor verdict. peer.js reads it every second.

/**
 * Read the stats of session `s` of `phone`, keep them in `s.stats` and announce them as the phone's `stats`
 * event. Does nothing once the session is over.
 */
export async function collectStats(phone, s) {
  if (phone.session !== s || !s.pc || s.pc.signalingState === 'closed') return;
  let report;
  try {
    report = await s.pc.getStats();
  } catch {
    return;
  }
  const byId = new Map();
  report.forEach((entry) => byId.set(entry.id, entry));
  let pair = null;
  let inbound = null;
  let remoteInbound = null;
  for (const entry of byId.values()) {
    const kind = entry.kind || entry.mediaType;
    if (entry.type === 'transport' && entry.selectedCandidatePairId) pair = byId.get(entry.selectedCandidatePairId) || pair;
    else if (entry.type === 'inbound-rtp' && kind === 'audio') inbound = entry;
    else if (entry.type === 'remote-inbound-rtp' && kind === 'audio') remoteInbound = entry;
  }
  if (!pair) {
    for (const entry of byId.values()) {
      if (entry.type === 'candidate-pair' && (entry.selected || (entry.nominated && entry.state === 'succeeded'))) {
        pair = entry;
        break;
      }
    }
  }
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  let route = null;
  if (local || remote) {
    route = (local && local.candidateType === 'relay') || (remote && remote.candidateType === 'relay') ? 'relay' : 'direct';
  }
  let rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : null;
  if (rtt === null && remoteInbound && typeof remoteInbound.roundTripTime === 'number') rtt = remoteInbound.roundTripTime;

  let loss = null;
  if (inbound) {
    const prev = s.lastInbound;
    const received = inbound.packetsReceived || 0;
    const lost = Math.max(0, inbound.packetsLost || 0);
    if (prev) {
      const dr = received - prev.received;
      const dl = Math.max(0, lost - prev.lost);
      loss = dr + dl > 0 ? dl / (dr + dl) : 0;
    }
    s.lastInbound = {received, lost};
  }
  let quality = null;
  if (rtt !== null || loss !== null) {
    const r = rtt ?? 0;
    const l = loss ?? 0;
    quality = r < 0.3 && l < 0.02 ? 'good' : r < 0.6 && l < 0.08 ? 'fair' : 'poor';
  }
  s.stats = {
    route,
    rtt,
    loss,
    quality,
    bytesReceived: inbound ? inbound.bytesReceived || 0 : 0,
    localType: local ? local.candidateType : null,
    remoteType: remote ? remote.candidateType : null,
  };
  phone.dispatchEvent(new CustomEvent('stats', {detail: s.stats}));
}
