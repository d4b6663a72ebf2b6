// The peer connection of a call (docs/web.md "WebRTC choices"): built from the microphone's stream and a fresh
// ICE config, with the trickle-ICE candidate queues on both sides (our candidates wait until the server knows
// the call, the other side's until the remote description is set), the remote audio, and the stats timer.

import {collectStats} from './callstats.js';
import {log} from './log.js';
import {fetchIceConfig, peerConfig} from './media.js';

const STATS_EVERY_MS = 1000;

/**
 * Build session `s`'s peer connection from an ICE config and the microphone's stream: our tracks, our candidates
 * (queued until the server knows the call), the remote audio, the stats every second. recovery.js watches its state.
 */
export function attachPeerConnection(phone, s, ice, stream) {
  const pc = new RTCPeerConnection(peerConfig(ice, phone.forceRelay));
  s.pc = pc;
  s.localStream = stream;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);

  pc.onicecandidate = ({candidate}) => {
    if (!candidate || !candidate.candidate) return; // end of candidates: nothing to relay
    const init = candidate.toJSON();
    if (s.signalled && !s.holdLocal) sendCandidate(phone, s, init);
    // The server drops candidates for a call it has not seen yet; a restart's wait for its description.
    else s.localQueue.push(init);
  };
  pc.ontrack = (event) => {
    s.remoteStream = event.streams[0] || new MediaStream([event.track]);
    phone.audio.srcObject = s.remoteStream;
    phone.audio.play().catch((err) => log.warn('call', 'remote audio did not autoplay:', err));
    phone.changed();
  };
  s.statsTimer = setInterval(() => collectStats(phone, s), STATS_EVERY_MS);
}

/** The server now knows the call (`call`, `answer` or `renegotiate` sent): our queued candidates go out. */
export function markSignalled(phone, s) {
  s.signalled = true;
  s.holdLocal = false;
  for (const candidate of s.localQueue.splice(0)) sendCandidate(phone, s, candidate);
}

function sendCandidate(phone, s, candidate) {
  phone.signaling.emit('ice-candidate', {targetCallId: s.peerCallId, candidate});
}

/** The remote description is set: add the other side's candidates that arrived before it. */
export async function remoteDescriptionSet(s) {
  s.remoteSet = true;
  for (const candidate of s.remoteQueue.splice(0)) await addRemoteCandidate(s, candidate);
}

/** Add one of the other side's candidates; one the browser refuses is logged, not fatal. */
export async function addRemoteCandidate(s, candidate) {
  try {
    await s.pc.addIceCandidate(candidate);
  } catch (err) {
    log.warn('webrtc', 'addIceCandidate failed:', err);
  }
}

/** Before an ICE restart: the TURN credentials of the call's start may have expired. */
export async function useFreshIceServers(phone, s) {
  try {
    const ice = await fetchIceConfig();
    if (phone.session === s) s.pc.setConfiguration(peerConfig(ice, phone.forceRelay));
  } catch (err) {
    log.warn('webrtc', 'ICE restart keeps the old ICE servers:', err);
  }
}
