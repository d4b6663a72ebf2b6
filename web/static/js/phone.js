// One call at a time, the WebRTC side of api.md's walkthrough and error table: the call's state, the actions of
// the call screen, and the one way out.
//
// States: idle → outgoing (mic + ICE config, then ringing) or incoming (ringing) → connecting → active → idle.
// Every exit path goes through end(), which stops the tracks, closes the peer connection and says why.
// Beside it: the server's call events and session resume (callevents.js), the microphone and ICE config
// (media.js), the peer connection and its candidate queues (peer.js), keeping the connection up through ICE
// restarts and the media watchdog (recovery.js), and the connection-quality stats (callstats.js).

import {api} from './api.js';
import {ringback, ringtone} from './audio.js';
import {followCallEvents} from './callevents.js';
import {isCallId, normalize} from './callid.js';
import {log} from './log.js';
import {fetchIceConfig, getMicrophone, relayOnlyRequested} from './media.js';
import {describeParty} from './party.js';
import {attachPeerConnection, markSignalled, remoteDescriptionSet} from './peer.js';
import {clearRecovery, restart, watchConnection} from './recovery.js';

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

    followCallEvents(this, signaling);
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
      markSignalled(this, s);
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
    const [ice, stream] = await Promise.all([fetchIceConfig(), getMicrophone()]);
    if (this.session !== s) {
      stream.getTracks().forEach((track) => track.stop());
      return false;
    }
    attachPeerConnection(this, s, ice, stream);
    watchConnection(this, s);
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
      await remoteDescriptionSet(s);
      const answer = await s.pc.createAnswer();
      await s.pc.setLocalDescription(answer);
      if (this.session !== s) return;
      if (!this.signaling.emit('answer', {targetCallId: s.peerCallId, answer: {type: 'answer', sdp: s.pc.localDescription.sdp}})) {
        throw new Error('Lost the connection to the server.');
      }
      markSignalled(this, s);
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
    return restart(this, s);
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

  // -- the session ------------------------------------------------------------------------------------------

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
    clearRecovery(s);
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
