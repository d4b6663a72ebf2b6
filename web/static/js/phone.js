// One call at a time: the WebRTC side of api.md's walkthrough and error table.
//
// States: idle → outgoing (mic + ICE config, then ringing) or incoming (ringing) → connecting → active → idle.
// Every exit path goes through end(), which stops the tracks, closes the peer connection and says why.
// A connection that drops mid-call is restarted (ICE restart over `renegotiate`) by the caller only, so the
// two sides never offer at once; the callee answers (docs/web.md "WebRTC choices").
// A network change (a phone roaming to another subnet) also takes the signaling connection: the media watchdog
// notices the silence first, replaces the socket, and the new one resumes the session (docs/web.md "Surviving a
// network change").

import {api} from './api.js';
import {ringback, ringtone} from './audio.js';
import {isCallId, normalize} from './callid.js';
import {log} from './log.js';
import {describeParty} from './party.js';
import {MediaWatchdog} from './watchdog.js';

const STATS_EVERY_MS = 1000;
// The caller restarts ICE when the connection has been 'disconnected' this long (or at once on 'failed')...
const RESTART_AFTER_MS = 3000;
// ... gives each restart this long to connect, and tries this many times before the call is given up.
const RESTART_TIMEOUT_MS = 10_000;
const MAX_RESTARTS = 2;
// The callee's backstop (and everyone's before the first connection): how long a dropped connection may stay
// down. Every restart offer from the caller starts it again; the caller gives up first (3 s + 2 × 10 s).
const RECOVERY_GRACE_MS = 20_000;
const LOST_MESSAGE = 'The connection dropped and did not come back, so the call ended.';
const SERVER_LOST_MESSAGE = 'Lost the connection to the server, so the call ended.';
// After the server connection drops mid-call, how long we wait for a new one to resume the call (the server
// holds it for signaling.resume_grace, 15 s by default).
const RESUME_WAIT_MS = 8000;

const isConnected = (pc) => ['connected', 'completed'].includes(pc.connectionState || pc.iceConnectionState);

/** Test-only switch: force TURN relay (iceTransportPolicy 'relay'). See docs/web.md. */
export function relayOnlyRequested() {
  try {
    const params = new URLSearchParams(location.search);
    if (params.has('forceRelay')) {
      const on = params.get('forceRelay') !== '0';
      if (on) sessionStorage.setItem('opencall.forceRelay', '1');
      else sessionStorage.removeItem('opencall.forceRelay');
    }
    return sessionStorage.getItem('opencall.forceRelay') === '1' || localStorage.getItem('opencall.forceRelay') === '1';
  } catch {
    return false;
  }
}

function micError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was blocked. Allow the microphone for this site in your browser’s settings, then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found on this device.';
    case 'NotReadableError':
      return 'The microphone is busy in another app. Close that app and try again.';
    default:
      return `The microphone could not be started (${(err && err.message) || 'unknown error'}).`;
  }
}

let nextSessionId = 1;

export class Phone extends EventTarget {
  constructor(signaling) {
    super();
    this.signaling = signaling;
    this.state = 'idle';
    this.session = null;
    this.forceRelay = relayOnlyRequested();
    this.audio = document.createElement('audio');
    this.audio.autoplay = true;
    this.audio.setAttribute('playsinline', '');
    this.audio.hidden = true;
    document.body.append(this.audio);

    const on = (name, handler) => signaling.addEventListener(name, (event) => handler.call(this, event.detail));
    on('incoming-call', this.onIncoming);
    on('call-answered', this.onAnswered);
    on('call-rejected', this.onRejected);
    on('call-ended', this.onRemoteEnded);
    on('ice-candidate', this.onRemoteCandidate);
    on('renegotiate', this.onRenegotiate);
    on('call-error', this.onCallError);
    on('call-resumed', this.onCallResumed);
    on('peer-reconnected', this.onPeerReconnected);
    on('session', this.onSession);
    on('lost', this.onSignalingLost);
    window.addEventListener('pagehide', () => {
      if (this.session) this.end({message: 'You left the page.', notify: this.hangupEvent()});
    });
  }

  // -- public actions ------------------------------------------------------------------------------------

  /**
   * Place a call to a Call ID: microphone, fresh ICE config, offer, `call`. `username`: the account the server
   * said owns that Call ID (the invite page), shown while it rings; else the Call ID is, until `call-answered`.
   */
  async call(rawTarget, username = null) {
    const target = normalize(rawTarget);
    if (this.session) throw new Error('You are already in a call.');
    if (!isCallId(target)) throw new Error('That is not a valid Call ID.');
    if (!this.signaling.online) throw new Error('Not connected to the server yet. Wait a moment and try again.');
    if (target === this.signaling.callId) throw new Error('That is your own Call ID. Call someone else’s.');

    const s = this.newSession('outgoing', target, {username: username || undefined});
    s.phase = 'Getting the microphone ready…';
    this.setState('outgoing');
    log.info('call', `calling ${target}${this.forceRelay ? ' (relay only)' : ''}`);
    try {
      if (!(await this.preparePeerConnection(s))) return;
      const offer = await s.pc.createOffer();
      await s.pc.setLocalDescription(offer);
      if (this.session !== s) return;
      if (!this.signaling.emit('call', {targetCallId: target, offer: {type: 'offer', sdp: s.pc.localDescription.sdp}})) {
        throw new Error('Lost the connection to the server. Try again in a moment.');
      }
      this.markSignalled(s);
      s.phase = 'Ringing…';
      ringback.start();
      this.changed();
    } catch (err) {
      if (this.session !== s) return;
      log.error('call', 'could not place the call:', err);
      this.end({message: err.userMessage || err.message, kind: 'error', notify: s.signalled ? 'hangup' : null});
    }
  }

  /**
   * Fetch a fresh ICE config and the microphone together, then build the peer connection for session `s`.
   * Resolves false (with the microphone released) when the session ended meanwhile.
   */
  async preparePeerConnection(s) {
    const [ice, stream] = await Promise.all([this.fetchIceConfig(), this.getMicrophone()]);
    if (this.session !== s) {
      stream.getTracks().forEach((track) => track.stop());
      return false;
    }
    this.attachPeerConnection(s, ice, stream);
    return true;
  }

  /** Accept the ringing call: microphone, fresh ICE config, answer. */
  async accept() {
    const s = this.session;
    if (!s || this.state !== 'incoming') return;
    ringtone.stop();
    this.closeNotification(s);
    s.phase = 'Connecting…';
    this.setState('connecting');
    log.info('call', `accepting call from ${s.peerCallId}`);
    try {
      if (!(await this.preparePeerConnection(s))) return;
      await s.pc.setRemoteDescription(s.offer);
      await this.remoteDescriptionSet(s);
      const answer = await s.pc.createAnswer();
      await s.pc.setLocalDescription(answer);
      if (this.session !== s) return;
      if (!this.signaling.emit('answer', {targetCallId: s.peerCallId, answer: {type: 'answer', sdp: s.pc.localDescription.sdp}})) {
        throw new Error('Lost the connection to the server.');
      }
      this.markSignalled(s);
    } catch (err) {
      if (this.session !== s) return;
      log.error('call', 'could not answer:', err);
      // The caller is still ringing: decline so they hear about it at once.
      this.end({message: `${err.userMessage || err.message} The call was declined.`, kind: 'error', notify: 'reject'});
    }
  }

  decline() {
    if (!this.session || this.state !== 'incoming') return;
    log.info('call', `declined call from ${this.session.peerCallId}`);
    this.end({message: `You declined the call from ${this.peerLabel()}.`, notify: 'reject'});
  }

  /**
   * Decline the ringing call, then block the caller's Call ID (POST /api/blocks; signed-in users only). The
   * outcome comes as a `notice`: the API's own error text when the block failed.
   */
  async declineAndBlock() {
    const s = this.session;
    if (!s || this.state !== 'incoming') return;
    const who = this.peerLabel();
    log.info('call', `declined and blocked call from ${s.peerCallId}`);
    this.end({message: `You declined the call from ${who} and blocked ${s.peerCallId}.`, notify: 'reject'});
    try {
      await api('/api/blocks', {method: 'POST', body: {callId: s.peerCallId}});
      this.dispatchEvent(new CustomEvent('notice', {detail: {message: `Blocked ${who}: their calls will not ring here.`, kind: 'ok'}}));
    } catch (err) {
      log.warn('call', `blocking ${s.peerCallId} failed:`, err);
      this.dispatchEvent(new CustomEvent('notice', {detail: {message: `Could not block ${s.peerCallId}: ${err.message}`, kind: 'error'}}));
    }
  }

  hangup() {
    const s = this.session;
    if (!s) return;
    if (this.state === 'incoming') {
      this.decline();
      return;
    }
    log.info('call', `hung up (${this.state})`);
    const message = this.state === 'active' ? 'Call ended.' : `Call to ${this.peerLabel()} cancelled.`;
    this.end({message, notify: this.hangupEvent()});
  }

  setMuted(muted) {
    const s = this.session;
    if (!s || !s.localStream) return;
    s.muted = muted;
    for (const track of s.localStream.getAudioTracks()) track.enabled = !muted;
    log.info('call', muted ? 'microphone muted' : 'microphone unmuted');
    this.changed();
  }

  toggleMute() {
    if (this.session) this.setMuted(!this.session.muted);
  }

  /**
   * ICE restart, on the caller's side (the callee answers it): fresh ICE servers, an offer with new ICE
   * credentials, `renegotiate`. Runs by itself when the connection drops; `window.opencall.phone.restartIce()`
   * lets tests run it on a healthy call. Resolves to whether an offer was sent.
   */
  restartIce() {
    const s = this.session;
    if (!s || !s.pc || s.direction !== 'outgoing' || !['connecting', 'active'].includes(this.state)) {
      log.warn('webrtc', 'ICE restart: only the caller restarts, during an answered call');
      return Promise.resolve(false);
    }
    return this.restart(s);
  }

  /** How the other party is shown (party.js): its account name, or "Unverified: …". */
  peer(s = this.session) {
    return s ? describeParty({username: s.peerUsername, displayName: s.peerName, callId: s.peerCallId}) : null;
  }

  peerLabel() {
    return this.session ? this.peer().name : '';
  }

  /**
   * What the call's recovery machinery is doing, for diagnostics and tests (`window.opencall.phone.recovery()`):
   * the server connection and its resumes, the media watchdog and the ICE restarts.
   */
  recovery() {
    const s = this.session;
    const sig = this.signaling;
    return {
      state: this.state,
      signaling: {connected: Boolean(sig.socket && sig.socket.connected), callId: sig.callId, ...sig.counters},
      call: s ? {
        connection: s.pc ? s.pc.connectionState || s.pc.iceConnectionState : null,
        awaitingResume: s.awaitingResume,
        resumes: s.resumes,
        restartsSent: s.restartsSent,
        restartAttempts: s.restarts,
        restarting: s.restarting,
        watchdog: s.watchdog ? s.watchdog.state() : null,
      } : null,
    };
  }

  // -- signaling events ---------------------------------------------------------------------------------------

  onIncoming({callerCallId, callerDisplayName, callerUsername, offer}) {
    if (this.session) {
      // The server answers "busy" itself; a second ring here means another tab of ours is in a call.
      log.warn('call', `ignored incoming call from ${callerCallId}: already in a call`);
      return;
    }
    if (!offer || offer.type !== 'offer') {
      log.warn('call', 'incoming call without an offer: ignored');
      return;
    }
    // No callerUsername (a caller without an account, or a server without the extension): unverified.
    const s = this.newSession('incoming', callerCallId, {name: callerDisplayName || null, username: callerUsername || null});
    s.offer = offer;
    s.phase = 'Incoming call';
    this.setState('incoming');
    log.info('call', `incoming call from ${callerCallId}`);
    ringtone.start();
    this.showNotification(s);
  }

  async onAnswered({answer, calleeDisplayName, calleeUsername}) {
    const s = this.session;
    if (!s || s.direction !== 'outgoing' || this.state !== 'outgoing' || !s.pc) return;
    ringback.stop();
    s.peerName = calleeDisplayName || null;
    s.peerUsername = calleeUsername || null;
    s.phase = 'Connecting…';
    this.setState('connecting');
    log.info('call', `${s.peerCallId} answered`);
    try {
      await s.pc.setRemoteDescription(answer);
      await this.remoteDescriptionSet(s);
    } catch (err) {
      log.error('call', 'bad answer:', err);
      if (this.session === s) this.end({message: 'The other side sent an answer this browser cannot use.', kind: 'error', notify: 'hangup'});
    }
  }

  onRejected() {
    if (!this.session || this.session.direction !== 'outgoing') return;
    log.info('call', `${this.session.peerCallId} declined`);
    this.end({message: `${this.peerLabel()} declined the call.`, kind: 'warn'});
  }

  onRemoteEnded() {
    if (!this.session) return;
    log.info('call', `remote ended the call (${this.state})`);
    const who = this.peerLabel();
    let message = `${who} hung up.`;
    if (this.state === 'incoming') message = `Missed call from ${who}.`;
    else if (this.state === 'outgoing') message = `The call to ${who} ended before it was answered.`;
    this.end({message});
  }

  async onRemoteCandidate({candidate}) {
    const s = this.session;
    if (!s || !candidate) return;
    // Trickle-ICE ordering: hold candidates until the remote description is set (api.md).
    if (!s.pc || !s.remoteSet) {
      s.remoteQueue.push(candidate);
      return;
    }
    await this.addRemoteCandidate(s, candidate);
  }

  /** The other side's `renegotiate`: an ICE-restart offer (we are the callee) or the answer to ours. */
  async onRenegotiate({description}) {
    const s = this.session;
    if (!s || !s.pc || !description || !['connecting', 'active'].includes(this.state)) return;
    const pc = s.pc;
    const expected = description.type === 'offer' ? 'stable' : 'have-local-offer';
    if (pc.signalingState !== expected) {
      log.warn('webrtc', `renegotiate ${description.type} ignored in signaling state ${pc.signalingState}`);
      return;
    }
    s.remoteSet = false; // candidates of the new ICE generation wait for the description that announces it
    try {
      await pc.setRemoteDescription(description);
      if (this.session !== s) return;
      await this.remoteDescriptionSet(s);
      if (description.type === 'answer') {
        log.info('webrtc', 'ICE restart answered');
        return;
      }
      log.info('webrtc', 'ICE restart offered by the caller: answering');
      if (s.recoveryTimer) this.startRecoveryTimer(s); // the caller is working on it: give it the full time
      await this.useFreshIceServers(s);
      s.holdLocal = true; // our new candidates go after the answer that announces their ICE credentials
      await pc.setLocalDescription(await pc.createAnswer());
      if (this.session !== s) return;
      this.signaling.emit('renegotiate', {targetCallId: s.peerCallId, description: {type: 'answer', sdp: pc.localDescription.sdp}});
    } catch (err) {
      // The caller's restart then times out, and it tries again or ends the call.
      if (this.session === s) log.warn('webrtc', `renegotiate ${description.type} failed:`, err);
    } finally {
      if (this.session === s) {
        if (!s.remoteSet) await this.remoteDescriptionSet(s);
        this.markSignalled(s);
      }
    }
  }

  onCallError({message}) {
    const text = message || 'The call could not be placed.';
    const s = this.session;
    if (s && s.direction === 'outgoing' && (this.state === 'outgoing' || this.state === 'connecting') && !s.connectedAt) {
      log.warn('call', `call-error: ${text}`);
      this.end({message: text, kind: 'error'});
      return;
    }
    log.warn('signaling', `call-error: ${text}`);
    this.dispatchEvent(new CustomEvent('notice', {detail: {message: text, kind: 'error'}}));
  }

  /**
   * The server connection dropped. An answered call waits for the reconnect to resume it (the server holds it):
   * the media may well still flow. A call still ringing ends, as does one whose socket the server closed on
   * purpose or that we closed ourselves (api.md: a server disconnect ends the call).
   */
  onSignalingLost(reason) {
    const s = this.session;
    if (!s) return;
    const resumable = s.signalled && ['connecting', 'active'].includes(this.state)
      && !['io server disconnect', 'io client disconnect'].includes(reason);
    if (!resumable) {
      this.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
      return;
    }
    if (s.awaitingResume) return;
    log.info('signaling', `server connection lost mid-call (${reason}): waiting up to ${RESUME_WAIT_MS / 1000} s to resume the call`);
    s.awaitingResume = true;
    clearTimeout(s.resumeTimer);
    s.resumeTimer = setTimeout(() => {
      if (this.session === s && s.awaitingResume) this.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
    }, RESUME_WAIT_MS);
    s.phase = 'Reconnecting to the server…';
    this.changed();
  }

  /** A new socket of ours took over the call (our `register` carried the resume token). */
  onCallResumed({peerCallId, role}) {
    const s = this.session;
    if (!s || normalize(peerCallId || '') !== s.peerCallId) {
      // We gave the call up meanwhile; the server still had it: end it there too.
      log.warn('call', `call with ${peerCallId} resumed, but it is over here: hanging up`);
      if (peerCallId) this.signaling.emit('hangup', {targetCallId: peerCallId});
      return;
    }
    s.awaitingResume = false;
    clearTimeout(s.resumeTimer);
    s.resumeTimer = null;
    s.resumes += 1;
    log.info('signaling', `call with ${s.peerCallId} resumed on the new connection (${role})`);
    s.phase = s.pc && isConnected(s.pc) ? '' : 'Reconnecting…';
    this.changed();
    // Our address may have changed: the caller restarts ICE at once; the callee waits for its offer.
    if (role !== 'caller' || s.direction !== 'outgoing') {
      if (s.recoveryTimer) this.startRecoveryTimer(s);
    } else if (s.pc && s.pc.signalingState === 'have-local-offer' && s.offerConnection === this.signaling.counters.connects) {
      // A restart offer already went out on this new connection, after our register: it reaches the other side.
      log.info('webrtc', 'ICE restart offer already sent on the new connection');
      s.restarts = 0;
    } else {
      this.restartNow(s, 'our connection to the server was replaced');
    }
  }

  /** The other party's new socket took over its side of the call: its address may have changed. */
  onPeerReconnected() {
    const s = this.session;
    if (!s || !s.pc || !['connecting', 'active'].includes(this.state)) return;
    log.info('signaling', `${s.peerCallId} reconnected to the server`);
    if (s.direction === 'outgoing') this.restartNow(s, 'the other side reconnected');
    else if (s.recoveryTimer) this.startRecoveryTimer(s);
  }

  /** The end of the server's reply to a `register`: a resume that did not bring our call back means it is over. */
  onSession({afterResume}) {
    const s = this.session;
    if (!s || !s.awaitingResume) return;
    log.warn('signaling', `the new connection did not resume the call${afterResume ? '' : ' (no resume token)'}`);
    this.end({message: SERVER_LOST_MESSAGE, kind: 'error'});
  }

  // -- WebRTC -----------------------------------------------------------------------------------------------

  newSession(direction, peerCallId, {name = null, username} = {}) {
    this.session = {
      id: nextSessionId++,
      direction,
      peerCallId,
      peerName: name, // the name the party typed (callerDisplayName / calleeDisplayName): proves nothing
      peerUsername: username, // its account, as the server says; null: none; undefined: not known yet
      offer: null,
      pc: null,
      localStream: null,
      remoteStream: null,
      remoteQueue: [],
      remoteSet: false,
      localQueue: [],
      signalled: false,
      holdLocal: false,
      restarts: 0,
      restartsSent: 0,
      restarting: false,
      offerConnection: null,
      restartDelay: null,
      restartDeadline: null,
      awaitingResume: false,
      resumeTimer: null,
      resumes: 0,
      watchdog: null,
      muted: false,
      startedAt: Date.now(),
      connectedAt: null,
      phase: '',
      stats: null,
      statsTimer: null,
      recoveryTimer: null,
      notification: null,
      lastInbound: null,
    };
    return this.session;
  }

  /** ICE servers are fetched fresh for every call: the TURN credentials in them expire. */
  async fetchIceConfig() {
    try {
      const config = await api('/api/ice-config');
      return config && Array.isArray(config.iceServers) ? config : {iceServers: []};
    } catch (err) {
      const wrapped = new Error(`Could not get the connection settings from the server: ${err.message}`);
      wrapped.userMessage = wrapped.message;
      throw wrapped;
    }
  }

  async getMicrophone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const err = new Error('This browser cannot use the microphone here. Open the box over https:// (see “Trust this box”).');
      err.userMessage = err.message;
      throw err;
    }
    try {
      return await navigator.mediaDevices.getUserMedia({
        audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true},
        video: false,
      });
    } catch (err) {
      const wrapped = new Error(micError(err));
      wrapped.userMessage = wrapped.message;
      throw wrapped;
    }
  }

  peerConfig(ice) {
    const config = {...ice};
    if (this.forceRelay) config.iceTransportPolicy = 'relay';
    return config;
  }

  /** Before an ICE restart: the TURN credentials of the call's start may have expired. */
  async useFreshIceServers(s) {
    try {
      const ice = await this.fetchIceConfig();
      if (this.session === s) s.pc.setConfiguration(this.peerConfig(ice));
    } catch (err) {
      log.warn('webrtc', 'ICE restart keeps the old ICE servers:', err);
    }
  }

  attachPeerConnection(s, ice, stream) {
    const pc = new RTCPeerConnection(this.peerConfig(ice));
    s.pc = pc;
    s.localStream = stream;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);

    pc.onicecandidate = ({candidate}) => {
      if (!candidate || !candidate.candidate) return; // end of candidates: nothing to relay
      const init = candidate.toJSON();
      if (s.signalled && !s.holdLocal) this.sendCandidate(s, init);
      // The server drops candidates for a call it has not seen yet; a restart's wait for its description.
      else s.localQueue.push(init);
    };
    pc.ontrack = (event) => {
      s.remoteStream = event.streams[0] || new MediaStream([event.track]);
      this.audio.srcObject = s.remoteStream;
      this.audio.play().catch((err) => log.warn('call', 'remote audio did not autoplay:', err));
      this.changed();
    };
    const onStateChange = () => this.onConnectionState(s);
    pc.onconnectionstatechange = onStateChange;
    pc.oniceconnectionstatechange = onStateChange;
    s.statsTimer = setInterval(() => this.collectStats(s), STATS_EVERY_MS);
  }

  markSignalled(s) {
    s.signalled = true;
    s.holdLocal = false;
    for (const candidate of s.localQueue.splice(0)) this.sendCandidate(s, candidate);
  }

  sendCandidate(s, candidate) {
    this.signaling.emit('ice-candidate', {targetCallId: s.peerCallId, candidate});
  }

  async remoteDescriptionSet(s) {
    s.remoteSet = true;
    for (const candidate of s.remoteQueue.splice(0)) await this.addRemoteCandidate(s, candidate);
  }

  async addRemoteCandidate(s, candidate) {
    try {
      await s.pc.addIceCandidate(candidate);
    } catch (err) {
      log.warn('webrtc', 'addIceCandidate failed:', err);
    }
  }

  onConnectionState(s) {
    if (this.session !== s || !s.pc) return;
    const pc = s.pc;
    // Firefox before 113 has no connectionState; the ICE state says nearly the same.
    const state = pc.connectionState || pc.iceConnectionState;
    log.info('webrtc', `connection ${state} (ice ${pc.iceConnectionState})`);
    if (isConnected(pc)) {
      this.clearRecovery(s);
      s.restarts = 0;
      if (!s.connectedAt) {
        s.connectedAt = Date.now();
        ringback.stop();
        log.info('call', `connected with ${s.peerCallId}`);
        this.startWatchdog(s);
      }
      s.phase = s.awaitingResume ? 'Reconnecting to the server…' : '';
      this.setState('active');
    } else if (state === 'failed' || pc.iceConnectionState === 'failed') {
      this.connectionDown(s, 'failed');
    } else if (state === 'disconnected' || pc.iceConnectionState === 'disconnected') {
      this.connectionDown(s, 'disconnected');
    }
  }

  /**
   * A network change or an outage. ICE keeps checking by itself, and new local candidates (continual
   * gathering) are still trickled over the live signaling channel; if that is not enough the caller restarts
   * ICE, and the callee waits for that (with a backstop). Before the first connection, there is nothing to
   * restart: 'failed' means no path works at all.
   */
  connectionDown(s, how) {
    if (!s.connectedAt && how === 'failed') {
      this.end({message: 'Could not connect the call: no network path between you two worked.', kind: 'error', notify: 'hangup'});
      return;
    }
    s.phase = 'Reconnecting…';
    this.changed();
    if (!s.connectedAt || s.direction !== 'outgoing') {
      if (!s.recoveryTimer) this.startRecoveryTimer(s);
    } else if (!s.restartDeadline && how === 'failed') {
      clearTimeout(s.restartDelay);
      s.restartDelay = null;
      this.restart(s);
    } else if (!s.restartDeadline && !s.restartDelay) {
      s.restartDelay = setTimeout(() => {
        s.restartDelay = null;
        if (this.session === s && !isConnected(s.pc)) this.restart(s);
      }, RESTART_AFTER_MS);
    }
  }

  startRecoveryTimer(s) {
    clearTimeout(s.recoveryTimer);
    s.recoveryTimer = setTimeout(() => {
      if (this.session === s && s.pc && !isConnected(s.pc)) this.end({message: LOST_MESSAGE, kind: 'error', notify: 'hangup'});
    }, RECOVERY_GRACE_MS);
  }

  clearRecovery(s) {
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
  restartNow(s, why) {
    if (this.session !== s || !s.pc || s.direction !== 'outgoing') return;
    if (s.restarting) {
      log.info('webrtc', `ICE restart (${why}): one is already being prepared`);
      return;
    }
    log.info('webrtc', `ICE restart now: ${why}`);
    s.restarts = 0;
    clearTimeout(s.restartDelay);
    s.restartDelay = null;
    this.restart(s);
  }

  /**
   * The media watchdog (watchdog.js) of an answered call. A stall means the network may have changed under us:
   * the server connection is replaced at once (a stalled TCP connection would otherwise go unnoticed for ~45 s)
   * and the caller restarts ICE, as soon as the new connection has resumed the call (`call-resumed`) when the
   * offer must travel on it. The callee's new connection resumes the call, which tells the caller to restart.
   */
  startWatchdog(s) {
    if (s.watchdog || !s.pc) return;
    s.watchdog = new MediaWatchdog(s.pc, {
      onFlow: (silentMs) => log.info('webrtc', `media watchdog: audio packets flow again after ${silentMs} ms`),
      onStall: (silentMs) => {
        if (this.session !== s) return;
        log.info('webrtc', `media watchdog: no audio packets for ${silentMs} ms: the network may have changed`);
        this.signaling.forceReconnect('no audio packets arrive');
        if (s.direction !== 'outgoing') return;
        if (this.signaling.socket && this.signaling.socket.connected) {
          this.restartNow(s, 'no audio packets arrive');
        } else {
          log.info('webrtc', 'media watchdog: ICE restart as soon as the new server connection resumes the call');
        }
      },
    });
  }

  /** One ICE restart attempt of the caller; after MAX_RESTARTS that did not bring the connection back, the end. */
  async restart(s) {
    const pc = s.pc;
    if (isConnected(pc)) s.restarts = 0; // a healthy call (a test, or a restart that already worked)
    if (s.restarts >= MAX_RESTARTS) {
      this.end({message: LOST_MESSAGE, kind: 'error', notify: 'hangup'});
      return false;
    }
    s.restarts += 1;
    s.restarting = true;
    log.info('webrtc', `ICE restart ${s.restarts} of ${MAX_RESTARTS}`);
    clearTimeout(s.restartDeadline);
    s.restartDeadline = setTimeout(() => {
      s.restartDeadline = null;
      if (this.session !== s) return;
      if (isConnected(s.pc)) s.restarts = 0;
      else this.restart(s);
    }, RESTART_TIMEOUT_MS);
    try {
      await this.useFreshIceServers(s);
      if (this.session !== s) return false;
      s.holdLocal = true; // our new candidates go after the offer that announces their ICE credentials
      pc.restartIce();
      await pc.setLocalDescription(await pc.createOffer({iceRestart: true}));
      if (this.session !== s) return false;
      const sent = this.signaling.emit('renegotiate', {targetCallId: s.peerCallId, description: {type: 'offer', sdp: pc.localDescription.sdp}});
      if (sent) {
        s.restartsSent += 1;
        s.offerConnection = this.signaling.counters.connects;
      }
      return sent;
    } catch (err) {
      if (this.session === s) log.warn('webrtc', 'ICE restart failed:', err); // the deadline tries again
      return false;
    } finally {
      s.restarting = false;
      if (this.session === s) this.markSignalled(s);
    }
  }

  async collectStats(s) {
    if (this.session !== s || !s.pc || s.pc.signalingState === 'closed') return;
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
    this.dispatchEvent(new CustomEvent('stats', {detail: s.stats}));
  }

  // -- endings -----------------------------------------------------------------------------------------------

  hangupEvent() {
    const s = this.session;
    if (!s) return null;
    if (this.state === 'incoming') return 'reject';
    return s.signalled || s.direction === 'incoming' ? 'hangup' : null;
  }

  /** The one exit path: tell the peer if asked, release everything, go idle, say what happened. */
  end({message = 'Call ended.', kind = 'info', notify = null} = {}) {
    const s = this.session;
    if (!s) return;
    this.session = null;
    if (notify) this.signaling.emit(notify, {targetCallId: s.peerCallId});
    ringtone.stop();
    ringback.stop();
    this.closeNotification(s);
    clearInterval(s.statsTimer);
    if (s.watchdog) s.watchdog.stop();
    clearTimeout(s.resumeTimer);
    this.clearRecovery(s);
    if (s.pc) {
      s.pc.onicecandidate = null;
      s.pc.ontrack = null;
      s.pc.onconnectionstatechange = null;
      s.pc.oniceconnectionstatechange = null;
      try {
        s.pc.close();
      } catch {
        // already closed
      }
    }
    if (s.localStream) s.localStream.getTracks().forEach((track) => track.stop());
    this.audio.srcObject = null;
    const duration = s.connectedAt ? Math.round((Date.now() - s.connectedAt) / 1000) : null;
    log.info('call', `ended: ${message}${duration !== null ? ` (${duration}s)` : ''}`);
    this.setState('idle');
    this.dispatchEvent(new CustomEvent('ended', {detail: {
      message, kind, duration, direction: s.direction, peerCallId: s.peerCallId, peerName: s.peerName,
      peerUsername: s.peerUsername,
    }}));
  }

  setState(state) {
    this.state = state;
    this.changed();
  }

  changed() {
    this.dispatchEvent(new CustomEvent('change', {detail: {state: this.state, session: this.session}}));
  }

  showNotification(s) {
    if (document.visibilityState !== 'hidden' || !('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const note = new Notification('Incoming call', {
        body: `${this.peer(s).name} is calling you on OpenCall`,
        tag: 'opencall-incoming',
        requireInteraction: true,
      });
      note.onclick = () => {
        window.focus();
        note.close();
      };
      s.notification = note;
    } catch (err) {
      log.warn('call', 'notification failed:', err); // Android Chrome only allows them from a service worker
    }
  }

  closeNotification(s) {
    if (s.notification) {
      s.notification.close();
      s.notification = null;
    }
  }
}
