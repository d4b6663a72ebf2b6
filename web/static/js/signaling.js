// The Socket.IO connection (api.md "Real-time calling"): register on every connect, keep the Call ID.
// The website's session cookie authenticates the socket, so a signed-in browser gets its permanent Call ID.
// Session resume (docs/api.md "Session resume"): the token from `session` is kept in memory only, and every
// reconnect registers with it, so a phone whose network changed takes its Call ID and its call back.

import {log} from './log.js';

const CALL_EVENTS = [
  'incoming-call', 'call-answered', 'call-rejected', 'call-ended', 'ice-candidate', 'renegotiate', 'call-error',
  'call-resumed', 'peer-reconnected',
];
// The first reconnection attempt comes this soon (socket.io-client adds ±50 %), so a connection replaced after
// a network change is back within about half a second.
const RECONNECT_DELAY_MS = 300;
const RECONNECT_DELAY_MAX_MS = 4000;

export class Signaling extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.callId = null;
    /** 'connecting' | 'online' | 'offline' */
    this.status = 'connecting';
    this.displayName = '';
    this.leaving = false;
    /** The resume token of our session (in memory only: it dies with the page). */
    this.resumeToken = null;
    /** Whether the register in flight presented a resume token. */
    this.resuming = false;
    /** For diagnostics and tests: connections made, sessions resumed, connections we replaced on purpose. */
    this.counters = {connects: 0, resumed: 0, forcedReconnects: 0};
    window.addEventListener('pagehide', () => {
      this.leaving = true;
    });
    window.addEventListener('pageshow', () => {
      this.leaving = false;
    });
  }

  connect() {
    if (typeof window.io !== 'function') {
      log.error('signaling', 'socket.io client bundle did not load');
      this.setStatus('offline');
      return;
    }
    this.socket = window.io({
      reconnection: true,
      reconnectionDelay: RECONNECT_DELAY_MS,
      reconnectionDelayMax: RECONNECT_DELAY_MAX_MS,
    });
    this.socket.on('connect', () => {
      this.counters.connects += 1;
      log.info('signaling', `connected (${this.socket.io.engine.transport.name})${this.resumeToken ? ': resuming the session' : ''}`);
      const payload = {displayName: this.displayName || null};
      if (this.resumeToken) payload.resume = this.resumeToken;
      this.resuming = Boolean(this.resumeToken);
      this.socket.emit('register', payload);
    });
    // After `registered` (and `call-resumed` or `call-ended` when a call was resumed): the reply is complete.
    this.socket.on('session', ({resumeToken} = {}) => {
      const resuming = this.resuming;
      this.resuming = false;
      this.resumeToken = typeof resumeToken === 'string' ? resumeToken : null;
      this.dispatchEvent(new CustomEvent('session', {detail: {afterResume: resuming}}));
    });
    this.socket.on('call-resumed', () => {
      this.counters.resumed += 1;
    });
    this.socket.on('registered', ({callId}) => {
      const changed = callId !== this.callId;
      this.callId = callId;
      log.info('signaling', `registered as ${callId}`);
      this.setStatus('online');
      if (changed) this.dispatchEvent(new CustomEvent('callid', {detail: callId}));
    });
    this.socket.on('disconnect', (reason) => {
      log.warn('signaling', `disconnected: ${reason}`);
      if (reason === 'io server disconnect') this.resumeToken = null; // dropped on purpose: nothing to resume
      this.dispatchEvent(new CustomEvent('lost', {detail: reason}));
      if (reason === 'io server disconnect' && !this.leaving) {
        // The server closed this socket (it does not reconnect by itself): connect again, register anew.
        setTimeout(() => this.socket.connect(), 1000);
        this.setStatus('connecting');
        return;
      }
      this.setStatus(this.socket.active ? 'connecting' : 'offline');
    });
    this.socket.on('connect_error', (err) => {
      log.warn('signaling', `connect error: ${err.message}`);
      this.setStatus(this.socket.active ? 'connecting' : 'offline');
    });
    for (const name of CALL_EVENTS) {
      this.socket.on(name, (payload) => this.dispatchEvent(new CustomEvent(name, {detail: payload || {}})));
    }
  }

  /** After login or logout: a fresh connection carries the new session cookie (and so another Call ID). */
  reconnect() {
    if (!this.socket) return;
    this.callId = null;
    this.resumeToken = null; // another identity: a new session, not a resumed one
    this.setStatus('connecting');
    this.dispatchEvent(new CustomEvent('callid', {detail: null}));
    this.socket.disconnect();
    this.socket.connect();
  }

  /**
   * Replace the connection now (the media watchdog's call: the network may have changed, and a TCP connection
   * that stalls without a reset goes unnoticed for up to 45 s). Closing the Engine.IO connection makes the
   * Manager reconnect at once, and the new socket resumes the session. Resolves nothing; returns whether a
   * connection was closed.
   */
  forceReconnect(why) {
    const socket = this.socket;
    if (!socket) return false;
    const engine = socket.io.engine;
    if (!socket.connected || !engine) {
      log.info('signaling', `not connected (${why}): ${socket.active ? 'already reconnecting' : 'connecting'}`);
      if (!socket.active) socket.connect();
      return false;
    }
    this.counters.forcedReconnects += 1;
    log.info('signaling', `replacing the server connection: ${why}`);
    engine.close();
    // Engine.IO waits for a pending long-poll write (or a transport upgrade) before it closes, which on a stalled
    // network never ends: then drop the connection on the Manager's side, which reconnects all the same.
    if (engine.readyState !== 'closed' && socket.io.engine === engine) socket.io.onclose('forced close');
    return true;
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', {detail: status}));
  }

  get online() {
    return this.status === 'online' && Boolean(this.callId);
  }

  emit(event, payload) {
    if (!this.socket || !this.socket.connected) {
      log.warn('signaling', `not connected: ${event} not sent`);
      return false;
    }
    this.socket.emit(event, payload);
    return true;
  }

  setDisplayName(name) {
    this.displayName = name;
    if (this.online) this.emit('update-name', {displayName: name || null});
  }
}
