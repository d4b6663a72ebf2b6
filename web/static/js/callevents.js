// The server's call events (api.md "Real-time calling"), as the phone handles them: a call ringing here, the
// answer, the other side's candidates and restart offers, the endings; and the session side of a network change
// (docs/web.md "Surviving a network change"): a lost server connection, and a call resumed on the new one.

import {ringback, ringtone} from './audio.js';
import {normalize} from './callid.js';
import {log} from './log.js';
import {addRemoteCandidate, markSignalled, remoteDescriptionSet, useFreshIceServers} from './peer.js';
import {isConnected, restartNow, startRecoveryTimer} from './recovery.js';

const SERVER_LOST_MESSAGE = 'Lost the connection to the server, so the call ended.';
// After the server connection drops mid-call, how long we wait for a new one to resume the call (the server
// holds it for signaling.resume_grace, 15 s by default).
const RESUME_WAIT_MS = 8000;

function onIncoming(phone, {callerCallId, callerDisplayName, callerUsername, offer}) {
  if (phone.session) {
    // The server answers "busy" itself; a second ring here means another tab of ours is in a call.
    log.warn('call', `ignored incoming call from ${callerCallId}: already in a call`);
    return;
  }
  if (!offer || offer.type !== 'offer') {
    log.warn('call', 'incoming call without an offer: ignored');
    return;
  }
  // No callerUsername (a caller without an account, or a server without the extension): unverified.
  const s = phone.newSession('incoming', callerCallId, {name: callerDisplayName || null, username: callerUsername || null});
  s.offer = offer;
  s.phase = 'Incoming call';
  phone.setState('incoming');
  log.info('call', `incoming call from ${callerCallId}`);
  ringtone.start();
  phone.showNotification(s);
}

async function onAnswered(phone, {answer, calleeDisplayName, calleeUsername}) {
  const s = phone.session;
  if (!s || s.direction !== 'outgoing' || phone.state !== 'outgoing' || !s.pc) return;
  ringback.stop();
  s.peerName = calleeDisplayName || null;
  s.peerUsername = calleeUsername || null;
  s.phase = 'Connecting…';
  phone.setState('connecting');
  log.info('call', `${s.peerCallId} answered`);
  try {
    await s.pc.setRemoteDescription(answer);
    await remoteDescriptionSet(s);
  } catch (err) {
    log.error('call', 'bad answer:', err);
    if (phone.session === s) phone.end({message: 'The other side sent an answer this browser cannot use.', kind: 'error', notify: 'hangup'});
  }
}

function onRejected(phone) {
  if (!phone.session || phone.session.direction !== 'outgoing') return;
  log.info('call', `${phone.session.peerCallId} declined`);
  phone.end({message: `${phone.peerLabel()} declined the call.`, kind: 'warn'});
}

function onRemoteEnded(phone) {
  if (!phone.session) return;
  log.info('call', `remote ended the call (${phone.state})`);
  const who = phone.peerLabel();
  let message = `${who} hung up.`;
  if (phone.state === 'incoming') message = `Missed call from ${who}.`;
  else if (phone.state === 'outgoing') message = `The call to ${who} ended before it was answered.`;
  phone.end({message});
}

async function onRemoteCandidate(phone, {candidate}) {
  const s = phone.session;
  if (!s || !candidate) return;
  // Trickle-ICE ordering: hold candidates until the remote description is set (api.md).
  if (!s.pc || !s.remoteSet) {
    s.remoteQueue.push(candidate);
    return;
  }
  await addRemoteCandidate(s, candidate);
}

/** The other side's `renegotiate`: an ICE-restart offer (we are the callee) or the answer to ours. */
async function onRenegotiate(phone, {description}) {
  const s = phone.session;
  if (!s || !s.pc || !description || !['connecting', 'active'].includes(phone.state)) return;
  const pc = s.pc;
  const expected = description.type === 'offer' ? 'stable' : 'have-local-offer';
  if (pc.signalingState !== expected) {
    log.warn('webrtc', `renegotiate ${description.type} ignored in signaling state ${pc.signalingState}`);
    return;
  }
  s.remoteSet = false; // candidates of the new ICE generation wait for the description that announces it
  try {
    await pc.setRemoteDescription(description);
    if (phone.session !== s) return;
    await remoteDescriptionSet(s);
    if (description.type === 'answer') {
      log.info('webrtc', 'ICE restart answered');
      return;
    }
    log.info('webrtc', 'ICE restart offered by the caller: answering');
    if (s.recoveryTimer) startRecoveryTimer(phone, s); // the caller is working on it: give it the full time
    await useFreshIceServers(phone, s);
    s.holdLocal = true; // our new candidates go after the answer that announces their ICE credentials
    await pc.setLocalDescription(await pc.createAnswer());
    if (phone.session !== s) return;
    phone.signaling.emit('renegotiate', {targetCallId: s.peerCallId, description: {type: 'answer', sdp: pc.localDescription.sdp}});
  } catch (err) {
    // The caller's restart then times out, and it tries again or ends the call.
    if (phone.session === s) log.warn('webrtc', `renegotiate ${description.type} failed:`, err);
  } finally {
    if (phone.session === s) {
      if (!s.remoteSet) await remoteDescriptionSet(s);
      markSignalled(phone, s);
    }
  }
}

function onCallError(phone, {message}) {
  const text = message || 'The call could not be placed.';
  const s = phone.session;
  if (s && s.direction === 'outgoing' && (phone.state === 'outgoing' || phone.state === 'connecting') && !s.connectedAt) {
    log.warn('call', `call-error: ${text}`);
    phone.end({message: text, kind: 'error'});
    return;
  }
  log.warn('signaling', `call-error: ${text}`);
  phone.dispatchEvent(new CustomEvent('notice', {detail: {message: text, kind: 'error'}}));
}

/**
 * The server connection dropped. An answered call waits for the reconnect to resume it (the server holds it):
 * the media may well still flow. A call still ringing ends, as does one whose socket the server closed on
 * purpose or that we closed ourselves (api.md: a server disconnect ends the call).
 */
function onSignalingLost(phone, reason) {
  const s = phone.session;
  if (!s) return;
  const resumable = s.signalled && ['connecting', 'active'].includes(phone.state)
    && !['io server disconnect', 'io client disconnect'].includes(reason);
  if (!resumable) {
    phone.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
    return;
  }
  if (s.awaitingResume) return;
  log.info('signaling', `server connection lost mid-call (${reason}): waiting up to ${RESUME_WAIT_MS / 1000} s to resume the call`);
  s.awaitingResume = true;
  clearTimeout(s.resumeTimer);
  s.resumeTimer = setTimeout(() => {
    if (phone.session === s && s.awaitingResume) phone.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
  }, RESUME_WAIT_MS);
  s.phase = 'Reconnecting to the server…';
  phone.changed();
}

/** A new socket of ours took over the call (our `register` carried the resume token). */
function onCallResumed(phone, {peerCallId, role}) {
  const s = phone.session;
  if (!s || normalize(peerCallId || '') !== s.peerCallId) {
    // We gave the call up meanwhile; the server still had it: end it there too.
    log.warn('call', `call with ${peerCallId} resumed, but it is over here: hanging up`);
    if (peerCallId) phone.signaling.emit('hangup', {targetCallId: peerCallId});
    return;
  }
  s.awaitingResume = false;
  clearTimeout(s.resumeTimer);
  s.resumeTimer = null;
  s.resumes += 1;
  log.info('signaling', `call with ${s.peerCallId} resumed on the new connection (${role})`);
  s.phase = s.pc && isConnected(s.pc) ? '' : 'Reconnecting…';
  phone.changed();
  // Our address may have changed: the caller restarts ICE at once; the callee waits for its offer.
  if (role !== 'caller' || s.direction !== 'outgoing') {
    if (s.recoveryTimer) startRecoveryTimer(phone, s);
  } else if (s.pc && s.pc.signalingState === 'have-local-offer' && s.offerConnection === phone.signaling.counters.connects) {
    // A restart offer already went out on this new connection, after our register: it reaches the other side.
    log.info('webrtc', 'ICE restart offer already sent on the new connection');
    s.restarts = 0;
  } else {
    restartNow(phone, s, 'our connection to the server was replaced');
  }
}

/** The other party's new socket took over its side of the call: its address may have changed. */
function onPeerReconnected(phone) {
  const s = phone.session;
  if (!s || !s.pc || !['connecting', 'active'].includes(phone.state)) return;
  log.info('signaling', `${s.peerCallId} reconnected to the server`);
  if (s.direction === 'outgoing') restartNow(phone, s, 'the other side reconnected');
  else if (s.recoveryTimer) startRecoveryTimer(phone, s);
}

/** The end of the server's reply to a `register`: a resume that did not bring our call back means it is over. */
function onSession(phone, {afterResume}) {
  const s = phone.session;
  if (!s || !s.awaitingResume) return;
  log.warn('signaling', `the new connection did not resume the call${afterResume ? '' : ' (no resume token)'}`);
  phone.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
}

/** Let `phone` handle the call events of `signaling` (signaling.js dispatches them with the payload as detail). */
export function followCallEvents(phone, signaling) {
  const on = (name, handler) => signaling.addEventListener(name, (event) => handler(phone, event.detail));
  on('incoming-call', onIncoming);
  on('call-answered', onAnswered);
  on('call-rejected', onRejected);
  on('call-ended', onRemoteEnded);
  on('ice-candidate', onRemoteCandidate);
  on('renegotiate', onRenegotiate);
  on('call-error', onCallError);
  on('call-resumed', onCallResumed);
  on('peer-reconnected', onPeerReconnected);
  on('session', onSession);
  on('lost', onSignalingLost);
}
