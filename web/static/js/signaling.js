// The Socket.IO connection (api.md "Real-time calling"): register on every connect, keep the Call ID.
// The website's session cookie authenticates the socket, so a signed-in browser gets its permanent Call ID.

import {log} from './log.js';

const CALL_EVENTS = ['incoming-call', 'call-answered', 'call-rejected', 'call-ended', 'ice-candidate', 'renegotiate', 'call-error'];

export class Signaling extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.callId = null;
    /** 'connecting' | 'online' | 'offline' */
    this.status = 'connecting';
    this.displayName = '';
    this.leaving = false;
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
    this.socket = window.io({reconnectionDelayMax: 4000});
    this.socket.on('connect', () => {
      log.info('signaling', `connected (${this.socket.io.engine.transport.name})`);
      this.socket.emit('register', {displayName: this.displayName || null});
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
    this.setStatus('connecting');
    this.dispatchEvent(new CustomEvent('callid', {detail: null}));
    this.socket.disconnect();
    this.socket.connect();
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
