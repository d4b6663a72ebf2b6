// The app shell: signaling, the phone, the call overlay, a history-API router and the views.

import {api} from './api.js';
import {unlockAudio} from './audio.js';
import {CallScreen} from './callscreen.js';
import {h, icon} from './dom.js';
import {log, startLogShipping} from './log.js';
import {Phone} from './phone.js';
import {Signaling} from './signaling.js';
import {dashboardView} from './views/dashboard.js';
import {docsView} from './views/docs.js';
import {contactView} from './views/contact.js';
import {homeView} from './views/home.js';
import {inviteView} from './views/invite.js';
import {loginView, registerView} from './views/auth.js';
import {notFoundView} from './views/notfound.js';
import {trustView} from './views/trust.js';

const NAME_KEY = 'opencall.displayName';

const ROUTES = [
  {pattern: /^\/$/, view: homeView, nav: 'home'},
  {pattern: /^\/invite\/([^/]+)$/, view: inviteView, nav: '', params: ['token']},
  {pattern: /^\/login$/, view: loginView, nav: 'account'},
  {pattern: /^\/register$/, view: registerView, nav: 'account'},
  {pattern: /^\/dashboard$/, view: dashboardView, nav: 'account'},
  {pattern: /^\/docs$/, view: docsView, nav: 'docs'},
  {pattern: /^\/trust$/, view: trustView, nav: 'trust'},
  {pattern: /^\/contact$/, view: contactView, nav: 'contact'},
];

function matchRoute(pathname) {
  for (const route of ROUTES) {
    const found = route.pattern.exec(pathname);
    if (found) {
      const params = {};
      (route.params || []).forEach((name, i) => {
        params[name] = decodeURIComponent(found[i + 1]);
      });
      return {route, params};
    }
  }
  return null;
}

class App extends EventTarget {
  constructor() {
    super();
    this.me = {authenticated: false};
    this.meLoaded = false;
    this.outcome = null; // how the last call ended, shown once on Home
    this.lastTarget = ''; // the Call ID last dialled, prefilled after a failed call
    this.current = null;
    this.firstRender = true;
    this.signaling = new Signaling();
    this.signaling.displayName = this.storedName();
    this.phone = new Phone(this.signaling);
    this.main = document.getElementById('main');
    this.announcer = document.getElementById('announcer');
    this.toasts = document.getElementById('toasts');
  }

  storedName() {
    try {
      return localStorage.getItem(NAME_KEY) || '';
    } catch {
      return '';
    }
  }

  setDisplayName(name) {
    const clean = name.trim().slice(0, 32);
    try {
      localStorage.setItem(NAME_KEY, clean);
    } catch {
      // private mode: the name lasts for this page only
    }
    this.signaling.setDisplayName(clean);
    log.info('app', clean ? 'display name changed' : 'display name cleared');
    return clean;
  }

  async refreshMe() {
    try {
      this.me = await api('/api/auth/me');
    } catch (err) {
      log.warn('app', 'could not read the session:', err);
      this.me = {authenticated: false};
    }
    this.meLoaded = true;
    this.updateNav();
    this.dispatchEvent(new Event('me'));
    return this.me;
  }

  /** After login, registration or logout: new identity, new socket (and so a new Call ID). */
  async sessionChanged() {
    await this.refreshMe();
    this.signaling.reconnect();
  }

  announce(text) {
    // Clear first so the same words are announced again.
    this.announcer.textContent = '';
    setTimeout(() => {
      this.announcer.textContent = text;
    }, 50);
  }

  toast(text, kind = 'info') {
    const note = h('div', {class: `toast ${kind}`}, icon(kind === 'error' ? 'warn' : 'check', 18), h('span', {text}));
    this.toasts.append(note);
    setTimeout(() => note.classList.add('leaving'), 3200);
    setTimeout(() => note.remove(), 3600);
  }

  navigate(path, {replace = false} = {}) {
    const url = new URL(path, location.origin);
    const target = url.pathname + url.search + url.hash;
    if (replace) history.replaceState({}, '', target);
    else if (target !== location.pathname + location.search + location.hash) history.pushState({}, '', target);
    this.render();
  }

  render() {
    const found = matchRoute(location.pathname);
    if (this.current && this.current.destroy) this.current.destroy();
    const view = found ? found.route.view(this, found.params) : notFoundView(this);
    this.current = view;
    this.main.replaceChildren(view.node);
    document.title = `${view.title} · OpenCall`;
    const nav = found ? found.route.nav : '';
    for (const link of document.querySelectorAll('.nav a')) {
      if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (!this.firstRender || view.focusOnLoad) {
      const target = view.node.querySelector('[data-autofocus]') || view.node.querySelector('h1');
      if (target) {
        if (!target.hasAttribute('tabindex') && !/^(INPUT|BUTTON|A|TEXTAREA|SELECT)$/.test(target.tagName)) {
          target.setAttribute('tabindex', '-1');
        }
        target.focus({preventScroll: false});
      }
      window.scrollTo(0, 0);
    }
    this.firstRender = false;
  }

  updateNav() {
    const link = document.querySelector('.nav a[data-nav="account"]');
    if (link) {
      link.textContent = this.me.authenticated ? 'Account' : 'Sign in';
      link.setAttribute('href', this.me.authenticated ? '/dashboard' : '/login');
    }
  }

  updateConnection() {
    const pill = document.getElementById('conn');
    const status = this.signaling.status;
    pill.dataset.state = status;
    pill.querySelector('.conn-text').textContent =
      status === 'online' ? 'Online' : status === 'connecting' ? 'Connecting…' : 'Offline';
    pill.title = status === 'online'
      ? `Connected to this box as ${this.signaling.callId}`
      : 'Not connected to this box: calls cannot reach you right now';
  }
}

function interceptLinks(app) {
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest('a[href]');
    if (!link || link.target || link.hasAttribute('download') || link.dataset.external !== undefined) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !matchRoute(url.pathname)) return;
    if (url.pathname === location.pathname && url.hash) return; // in-page anchor
    event.preventDefault();
    app.navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener('popstate', () => app.render());
}

function boot() {
  startLogShipping();
  const app = new App();
  window.opencall = {app, phone: app.phone, signaling: app.signaling, log}; // for diagnostics and tests
  log.info('app', `start ${location.pathname} (${navigator.userAgent})`);

  new CallScreen({
    phone: app.phone,
    layer: document.getElementById('call-layer'),
    shell: document.getElementById('shell'),
    announce: (text) => app.announce(text),
    canBlock: () => Boolean(app.me.authenticated),
  });
  app.phone.addEventListener('ended', (event) => {
    const outcome = event.detail;
    app.outcome = outcome;
    if (outcome.direction === 'outgoing') app.lastTarget = outcome.peerCallId;
    app.announce(outcome.message);
    document.title = 'OpenCall';
    app.navigate('/'); // api.md's error table: show the message, return Home
  });
  app.phone.addEventListener('notice', (event) => app.toast(event.detail.message, event.detail.kind));
  app.signaling.addEventListener('status', () => {
    app.updateConnection();
    app.dispatchEvent(new Event('connection'));
  });
  app.signaling.addEventListener('callid', () => {
    app.updateConnection();
    app.dispatchEvent(new Event('connection'));
  });
  document.addEventListener('pointerdown', unlockAudio, {capture: true});
  document.addEventListener('keydown', unlockAudio, {capture: true});

  interceptLinks(app);
  app.updateConnection();
  app.render();
  app.signaling.connect();
  app.refreshMe();
}

boot();
