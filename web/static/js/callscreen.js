// The call overlay: incoming (ringing), outgoing and in-call screens over the page, with focus kept inside.

import {meterFor, unlockAudio} from './audio.js';
import {formatDuration, h, icon, initials} from './dom.js';
import {identityMark} from './party.js';

export class CallScreen {
  /** `canBlock()`: whether the user may block callers (signed in), which adds "Decline and block" to ringing. */
  constructor({phone, layer, shell, announce, canBlock = () => false}) {
    this.phone = phone;
    this.canBlock = canBlock;
    this.layer = layer;
    this.shell = shell;
    this.announce = announce;
    this.kind = null; // which screen is built: 'incoming' | 'call'
    this.sessionId = null;
    this.refs = {};
    this.meters = {local: null, remote: null, localStream: null, remoteStream: null};
    this.timer = null;
    this.lastAnnounced = '';
    this.returnFocus = null;
    phone.addEventListener('change', () => this.render());
    phone.addEventListener('stats', (event) => this.showStats(event.detail));
    this.layer.addEventListener('keydown', (event) => this.trapFocus(event));
  }

  render() {
    const {state, session} = this.phone;
    if (!session || state === 'idle') {
      this.close();
      return;
    }
    const kind = state === 'incoming' ? 'incoming' : 'call';
    if (kind !== this.kind || session.id !== this.sessionId) this.build(kind, session);
    this.update(state, session);
  }

  build(kind, session) {
    this.stopMeters();
    if (!this.kind) this.returnFocus = document.activeElement;
    this.kind = kind;
    this.sessionId = session.id;
    const {name} = this.phone.peer(session);
    const refs = {};
    refs.status = h('p', {class: 'call-status', id: 'call-status'});
    refs.name = h('h2', {class: 'call-name', id: 'call-name', text: name});
    refs.avatar = h('div', {class: 'avatar', 'aria-hidden': 'true'});
    refs.identity = h('p', {class: 'call-identity', id: 'call-identity'});
    refs.alias = h('p', {class: 'call-alias'});
    refs.sub = h('p', {class: 'call-sub'});
    let body;
    if (kind === 'incoming') {
      refs.accept = h('button', {class: 'round-btn accept', type: 'button', onclick: () => {
        unlockAudio();
        this.phone.accept();
      }}, icon('phone', 30), h('span', {text: 'Accept'}));
      refs.decline = h('button', {class: 'round-btn decline', type: 'button', onclick: () => this.phone.decline()},
        icon('hangup', 30), h('span', {text: 'Decline'}));
      body = h('div', {class: 'call-actions'}, refs.decline, refs.accept);
      if (this.canBlock()) {
        refs.block = h('button', {class: 'block-btn', type: 'button', onclick: () => this.phone.declineAndBlock()},
          icon('block', 18), h('span', {text: 'Decline and block'}));
        body = h('div', {class: 'call-body'}, body, refs.block);
      }
    } else {
      refs.timer = h('p', {class: 'call-timer', 'aria-label': 'Call duration'}, '0:00');
      refs.quality = h('p', {class: 'call-quality', 'data-quality': 'unknown', 'aria-live': 'off'});
      refs.localBar = h('span', {class: 'meter-fill'});
      refs.remoteBar = h('span', {class: 'meter-fill'});
      refs.remoteLabel = h('span', {class: 'meter-label', text: name});
      const meters = h('div', {class: 'meters', 'aria-hidden': 'true'},
        h('div', {class: 'meter', 'data-meter': 'local'}, h('span', {class: 'meter-label', text: 'You'}),
          h('span', {class: 'meter-track'}, refs.localBar)),
        refs.remoteMeter = h('div', {class: 'meter', 'data-meter': 'remote'}, refs.remoteLabel,
          h('span', {class: 'meter-track'}, refs.remoteBar)));
      refs.mute = h('button', {class: 'round-btn mute', type: 'button', 'aria-pressed': 'false',
        onclick: () => this.phone.toggleMute()}, icon('mic', 28), h('span', {class: 'mute-text', text: 'Mute'}));
      refs.hangup = h('button', {class: 'round-btn decline', type: 'button', onclick: () => this.phone.hangup()},
        icon('hangup', 30), h('span', {text: 'Hang up'}));
      body = h('div', {class: 'call-body'}, refs.timer, refs.quality, meters,
        h('div', {class: 'call-actions'}, refs.mute, refs.hangup));
    }
    const relay = this.phone.forceRelay ? h('p', {class: 'call-badge', text: 'Relay-only test mode'}) : null;
    const dialog = h('section', {
      class: `call-screen ${kind}`,
      role: kind === 'incoming' ? 'alertdialog' : 'dialog',
      'aria-modal': 'true',
      'aria-labelledby': 'call-name',
      'aria-describedby': 'call-status call-identity',
      'data-screen': kind,
    }, h('div', {class: 'call-top'}, refs.status, refs.avatar, refs.name, refs.identity, refs.alias, refs.sub, relay), body);
    this.refs = refs;
    this.layer.replaceChildren(dialog);
    this.layer.hidden = false;
    this.shell.inert = true;
    document.body.classList.add('in-call');
    (refs.accept || refs.hangup).focus();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 500);
  }

  update(state, session) {
    const refs = this.refs;
    const party = this.phone.peer(session);
    const {name} = party;
    refs.name.textContent = name;
    refs.name.dataset.verified = String(party.verified);
    if (refs.remoteLabel) refs.remoteLabel.textContent = name;
    refs.avatar.textContent = initials(session.peerUsername || session.peerName || session.peerCallId);
    const mark = identityMark(party, {long: true});
    refs.identity.replaceChildren(...(mark ? [mark] : []));
    refs.identity.hidden = !mark;
    refs.alias.textContent = party.alias ? `Calls themselves “${party.alias}”` : '';
    refs.alias.hidden = !party.alias;
    refs.sub.textContent = name !== session.peerCallId ? `Call ID ${session.peerCallId}` : '';
    let status;
    let spoken;
    if (state === 'incoming') {
      status = 'Incoming call';
      spoken = `Incoming call from ${name}`;
      document.title = `Incoming call · ${name}`;
    } else if (state === 'outgoing') {
      status = session.phase || 'Calling…';
      spoken = `Calling ${name}`;
      document.title = `Calling ${name}`;
    } else if (state === 'connecting') {
      status = session.phase || 'Connecting…';
      spoken = `Connecting to ${name}`;
    } else {
      status = session.phase || 'In call';
      spoken = session.phase ? `${session.phase}` : `Call connected with ${name}`;
      document.title = `In call · ${name}`;
    }
    refs.status.textContent = status;
    this.layer.dataset.state = state;
    if (spoken !== this.lastAnnounced) {
      this.lastAnnounced = spoken;
      this.announce(spoken);
    }
    if (refs.mute) {
      refs.mute.setAttribute('aria-pressed', String(session.muted));
      refs.mute.classList.toggle('on', session.muted);
      refs.mute.querySelector('.mute-text').textContent = session.muted ? 'Unmute' : 'Mute';
      refs.mute.replaceChild(icon(session.muted ? 'micOff' : 'mic', 28), refs.mute.querySelector('svg'));
      refs.mute.disabled = !session.localStream;
      if (this.mutedAnnounced !== undefined && this.mutedAnnounced !== session.muted) {
        this.announce(session.muted ? 'Microphone muted' : 'Microphone on');
      }
      this.mutedAnnounced = session.muted;
      this.startMeters(session);
    }
    this.tick();
  }

  tick() {
    const session = this.phone.session;
    if (!session || !this.refs.timer) return;
    this.refs.timer.hidden = !session.connectedAt;
    this.refs.remoteMeter.hidden = !session.remoteStream;
    if (session.connectedAt) {
      this.refs.timer.textContent = formatDuration((Date.now() - session.connectedAt) / 1000);
    } else {
      this.refs.timer.textContent = '0:00';
    }
  }

  showStats(stats) {
    const el = this.refs.quality;
    if (!el || !stats) return;
    const parts = [];
    const label = {good: 'Good connection', fair: 'Fair connection', poor: 'Poor connection'}[stats.quality];
    if (label) parts.push(label);
    if (stats.route) parts.push(stats.route === 'relay' ? 'Relayed via this box' : 'Direct');
    if (stats.rtt !== null) parts.push(`${Math.round(stats.rtt * 1000)} ms`);
    if (stats.loss !== null) parts.push(`${(stats.loss * 100).toFixed(stats.loss < 0.1 ? 1 : 0)}% loss`);
    el.textContent = parts.join(' · ');
    el.dataset.quality = stats.quality || 'unknown';
    el.dataset.route = stats.route || '';
    el.dataset.bytesReceived = String(stats.bytesReceived);
  }

  startMeters(session) {
    const m = this.meters;
    if (session.localStream && m.localStream !== session.localStream) {
      if (m.local) m.local();
      m.localStream = session.localStream;
      m.local = meterFor(session.localStream, (level) => this.setLevel(this.refs.localBar, session.muted ? 0 : level));
    }
    if (session.remoteStream && m.remoteStream !== session.remoteStream) {
      if (m.remote) m.remote();
      m.remoteStream = session.remoteStream;
      m.remote = meterFor(session.remoteStream, (level) => this.setLevel(this.refs.remoteBar, level));
    }
  }

  setLevel(bar, level) {
    if (bar) bar.style.transform = `scaleX(${level.toFixed(3)})`;
  }

  stopMeters() {
    const m = this.meters;
    if (m.local) m.local();
    if (m.remote) m.remote();
    this.meters = {local: null, remote: null, localStream: null, remoteStream: null};
  }

  close() {
    if (!this.kind) return;
    this.stopMeters();
    clearInterval(this.timer);
    this.timer = null;
    this.kind = null;
    this.sessionId = null;
    this.refs = {};
    this.lastAnnounced = '';
    this.mutedAnnounced = undefined;
    this.layer.replaceChildren();
    this.layer.hidden = true;
    delete this.layer.dataset.state;
    this.shell.inert = false;
    document.body.classList.remove('in-call');
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && back.isConnected && typeof back.focus === 'function') back.focus();
  }

  trapFocus(event) {
    if (event.key !== 'Tab' || !this.kind) return;
    const focusable = [...this.layer.querySelectorAll('button:not([disabled]), [href], [tabindex]:not([tabindex="-1"])')];
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }
}
