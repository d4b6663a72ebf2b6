// Sign in and create account. The server sets the session cookie; the socket reconnects to pick it up.

import {api} from '../api.js';
import {h} from '../dom.js';
import {banner, card, field} from './common.js';

function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/dashboard';
}

function authForm(app, {mode}) {
  const isLogin = mode === 'login';
  const username = field({id: 'username', label: 'Username',
    hint: isLogin ? '' : '2–32 characters: letters, numbers, _ . -',
    attrs: {autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, 'data-autofocus': ''}});
  const email = isLogin ? null : field({id: 'email', label: 'Email', type: 'email',
    attrs: {autocomplete: 'email', required: true}});
  const password = field({id: 'password', label: 'Password', type: 'password',
    hint: isLogin ? '' : 'At least 6 characters.',
    attrs: {autocomplete: isLogin ? 'current-password' : 'new-password', required: true}});
  const errorArea = h('div', {class: 'form-error-area'});
  const submit = h('button', {class: 'btn primary wide', type: 'submit', text: isLogin ? 'Sign in' : 'Create account'});
  const form = h('form', {class: 'stack', novalidate: true},
    errorArea, username.node, email && email.node, password.node, submit);

  const fields = {username, email, password};
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorArea.replaceChildren();
    for (const f of Object.values(fields)) if (f) f.setError('');
    const body = {username: username.input.value.trim(), password: password.input.value};
    if (!isLogin) body.email = email.input.value.trim();
    // Quick checks before the round trip; the server has the final word.
    const problems = [];
    if (!body.username) problems.push([username, 'Enter your username.']);
    else if (!isLogin && !/^[A-Za-z0-9_.-]{2,32}$/.test(body.username)) {
      problems.push([username, 'Use 2–32 characters: letters, numbers, _ . - only.']);
    }
    if (!isLogin && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(body.email)) problems.push([email, 'Enter a valid email address.']);
    if (!body.password) problems.push([password, 'Enter your password.']);
    else if (!isLogin && body.password.length < 6) problems.push([password, 'Use at least 6 characters.']);
    if (problems.length) {
      for (const [f, message] of problems) f.setError(message);
      problems[0][0].input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = isLogin ? 'Signing in…' : 'Creating account…';
    try {
      await api(isLogin ? '/api/auth/login' : '/api/auth/register', {method: 'POST', body});
      await app.sessionChanged();
      app.toast(isLogin ? `Signed in as ${app.me.username}` : `Welcome, ${app.me.username}!`, 'ok');
      app.navigate(nextPath(), {replace: true});
    } catch (err) {
      const message = err.message;
      const target = /email/i.test(message) && email ? email
        : /password/i.test(message) && !/username or password/i.test(message) ? password
          : /username/i.test(message) && !/username or password/i.test(message) ? username : null;
      if (target) {
        target.setError(message);
        target.input.focus();
      } else {
        const alert = banner(message, 'error');
        errorArea.replaceChildren(alert);
        alert.focus();
      }
      submit.disabled = false;
      submit.textContent = isLogin ? 'Sign in' : 'Create account';
    }
  });
  return form;
}

export function loginView(app) {
  const node = h('div', {class: 'page narrow'},
    card(
      h('h1', {class: 'card-title', text: 'Sign in'}),
      h('p', {class: 'muted', text: 'Sign in to keep one permanent Call ID, make invite links and see your calls.'}),
      authForm(app, {mode: 'login'}),
      h('p', {class: 'center muted'}, 'New here? ', h('a', {href: `/register${location.search}`, text: 'Create an account'})),
    ));
  const signedIn = signedInNotice(app, node);
  return {node, title: 'Sign in', destroy: signedIn};
}

/** Tell a signed-in visitor so (the session is read after the first render); returns the cleanup. */
function signedInNotice(app, node) {
  const show = () => {
    if (!app.me.authenticated || node.querySelector('[data-signed-in]')) return;
    const note = banner(`You are already signed in as ${app.me.username}.`, 'info');
    note.dataset.signedIn = '';
    note.append(h('a', {class: 'btn secondary', href: '/dashboard', text: 'Your account'}));
    node.prepend(note);
  };
  show();
  app.addEventListener('me', show);
  return () => app.removeEventListener('me', show);
}

export function registerView(app) {
  const node = h('div', {class: 'page narrow'},
    card(
      h('h1', {class: 'card-title', text: 'Create your account'}),
      h('p', {class: 'muted', text: 'Accounts live on this box only. You get a permanent Call ID and an API key.'}),
      authForm(app, {mode: 'register'}),
      h('p', {class: 'center muted'}, 'Already have an account? ', h('a', {href: `/login${location.search}`, text: 'Sign in'})),
    ));
  return {node, title: 'Create account', destroy: signedInNotice(app, node)};
}
