// Keeping an answered call's connection up (docs/web.md "WebRTC choices" and "Surviving a network change").
// A connection that drops mid-call is restarted (ICE restart over `renegotiate`) by the caller only, so the two
// sides never offer at once; the callee answers, with a backstop of its own. The media watchdog notices a network
// change first: it replaces the server connection, and the caller restarts ICE once the call is resumed on it.

import {ringback} from './audio.js';
import {log} from './log.js';
import {markSignalled, useFreshIceServers} from './peer.js';
import {MediaWatchdog} from './watchdog.js';

// The caller restarts ICE when the connection has been 'disconnected' this long (or at once on 'failed')...
const RESTART_AFTER_MS = 3000;
// ... gives each restart this long to connect, and tries this many times before the call is given up.
const RESTART_TIMEOUT_MS = 10_000;
const MAX_RESTARTS = 2;
// The callee's backstop (and everyone's before the first connection): how long a dropped connection may stay
// down. Every restart offer from the caller starts it again; the caller gives up first (3 s + 2 × 10 s).
const RECOVERY_GRACE_MS = 20_000;
const LOST_MESSAGE = 'The connection dropped and did not come back, so the call ended.';

/** Whether a peer connection is connected (Firefox before 113 has only the ICE state). */
export const isConnected = (pc) => ['connected', 'completed'].includes(pc.connectionState || pc.iceConnectionState);

/** Follow the connection state of session `s`'s peer connection (attached by peer.js). */
export function watchConnection(phone, s) {
  const onStateChange = () => onConnectionState(phone, s);
  s.pc.onconnectionstatechange = onStateChange;
  s.pc.oniceconnectionstatechange = onStateChange;
}

/** A connection state change: connected (the call is active), or down (recover, or give up). */
function onConnectionState(phone, s) {
  if (phone.session !== s || !s.pc) return;
  const pc = s.pc;
  // Firefox before 113 has no connectionState; the ICE state says nearly the same.
  const state = pc.connectionState || pc.iceConnectionState;
  log.info('webrtc', `connection ${state} (ice ${pc.iceConnectionState})`);
  if (isConnected(pc)) {
    clearRecovery(s);
    s.restarts = 0;
    if (!s.connectedAt) {
      s.connectedAt = Date.now();
      ringback.stop();
      log.info('call', `connected with ${s.peerCallId}`);
      startWatchdog(phone, s);
    }
    s.phase = s.awaitingResume ? 'Reconnecting to the server…' : '';
    phone.setState('active');
  } else if (state === 'failed' || pc.iceConnectionState === 'failed') {
    connectionDown(phone, s, 'failed');
  } else if (state === 'disconnected' || pc.iceConnectionState === 'disconnected') {
    connectionDown(phone, s, 'disconnected');
  }
}

/**
 * A network change or an outage. ICE keeps checking by itself, and new local candidates (continual
 * gathering) are still trickled over the live signaling channel; if that is not enough the caller restarts
 * ICE, and the callee waits for that (with a backstop). Before the first connection, there is nothing to
 * restart: 'failed' means no path works at all.
 */
function connectionDown(phone, s, how) {
  if (!s.connectedAt && how === 'failed') {
    phone.end({message: 'Could not connect the call: no network path between you two worked.', kind: 'error', notify: 'hangup'});
    return;
  }
  s.phase = 'Reconnecting…';
  phone.changed();
  if (!s.connectedAt || s.direction !== 'outgoing') {
    if (!s.recoveryTimer) startRecoveryTimer(phone, s);
  } else if (!s.restartDeadline && how === 'failed') {
    clearTimeout(s.restartDelay);
    s.restartDelay = null;
    restart(phone, s);
  } else if (!s.restartDeadline && !s.restartDelay) {
    s.restartDelay = setTimeout(() => {
      s.restartDelay = null;
      if (phone.session === s && !isConnected(s.pc)) restart(phone, s);
    }, RESTART_AFTER_MS);
  }
}

/** (Re)start the backstop: the call ends if the connection is still down after RECOVERY_GRACE_MS. */
export function startRecoveryTimer(phone, s) {
  clearTimeout(s.recoveryTimer);
  s.recoveryTimer = setTimeout(() => {
    if (phone.session === s && s.pc && !isConnected(s.pc)) phone.end({message: LOST_MESSAGE, kind: 'error', notify: 'hangup'});
  }, RECOVERY_GRACE_MS);
}

/** Stop session `s`'s recovery timers: the connection is back, or the call is over. */
export function clearRecovery(s) {
  for (const key of ['recoveryTimer', 'restartDelay', 'restartDeadline']) {
    clearTimeout(s[key]);
    s[key] = null;
  }
}

/**
 * An ICE restart right now, with a fresh budget: our socket or the other side's was replaced, or the media
 * stopped. Skipped while a restart is being prepared (its offer goes out on the live connection anyway); an
 * offer already sent may have gone down with the old connection, so it does not count.
 */
export function restartNow(phone, s, why) {
  if (phone.session !== s || !s.pc || s.direction !== 'outgoing') return;
  if (s.restarting) {
    log.info('webrtc', `ICE restart (${why}): one is already being prepared`);
    return;
  }
  log.info('webrtc', `ICE restart now: ${why}`);
  s.restarts = 0;
  clearTimeout(s.restartDelay);
  s.restartDelay = null;
  restart(phone, s);
}

/**
 * The media watchdog (watchdog.js) of an answered call. A stall means the network may have changed under us:
 * the server connection is replaced at once (a stalled TCP connection would otherwise go unnoticed for ~45 s)
 * and the caller restarts ICE, as soon as the new connection has resumed the call (`call-resumed`) when the
 * offer must travel on it. The callee's new connection resumes the call, which tells the caller to restart.
 */
function startWatchdog(phone, s) {
  if (s.watchdog || !s.pc) return;
  s.watchdog = new MediaWatchdog(s.pc, {
    onFlow: (silentMs) => log.info('webrtc', `media watchdog: audio packets flow again after ${silentMs} ms`),
    onStall: (silentMs) => {
      if (phone.session !== s) return;
      log.info('webrtc', `media watchdog: no audio packets for ${silentMs} ms: the network may have changed`);
      phone.signaling.forceReconnect('no audio packets arrive');
      if (s.direction !== 'outgoing') return;
      if (phone.signaling.socket && phone.signaling.socket.connected) {
        restartNow(phone, s, 'no audio packets arrive');
      } else {
        log.info('webrtc', 'media watchdog: ICE restart as soon as the new server connection resumes the call');
      }
    },
  });
}

/** One ICE restart attempt of the caller; after MAX_RESTARTS that did not bring the connection back, the end. */
export async function restart(phone, s) {
  const pc = s.pc;
  if (isConnected(pc)) s.restarts = 0; // a healthy call (a test, or a restart that already worked)
  if (s.restarts >= MAX_RESTARTS) {
    phone.end({message: LOST_MESSAGE, kind: 'error', notify: 'hangup'});
    return false;
  }
  s.restarts += 1;
  s.restarting = true;
  log.info('webrtc', `ICE restart ${s.restarts} of ${MAX_RESTARTS}`);
  clearTimeout(s.restartDeadline);
  s.restartDeadline = setTimeout(() => {
    s.restartDeadline = null;
    if (phone.session !== s) return;
    if (isConnected(s.pc)) s.restarts = 0;
    else restart(phone, s);
  }, RESTART_TIMEOUT_MS);
  try {
    await useFreshIceServers(phone, s);
    if (phone.session !== s) return false;
    s.holdLocal = true; // our new candidates go after the offer that announces their ICE credentials
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer({iceRestart: true}));
    if (phone.session !== s) return false;
    const sent = phone.signaling.emit('renegotiate', {targetCallId: s.peerCallId, description: {type: 'offer', sdp: pc.localDescription.sdp}});
    if (sent) {
      s.restartsSent += 1;
      s.offerConnection = phone.signaling.counters.connects;
    }
    return sent;
  } catch (err) {
    if (phone.session === s) log.warn('webrtc', 'ICE restart failed:', err); // the deadline tries again
    return false;
  } finally {
    s.restarting = false;
    if (phone.session === s) markSignalled(phone, s);
  }
}
