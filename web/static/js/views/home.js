// Home: my Call ID (copy), my display name, the call box, connection status, the last call's outcome.

import {checkCallId} from '../callid.js';
import {h, icon} from '../dom.js';
import {banner, card, copyButton, field} from './common.js';

/** The call box: validates as you type (alphabet, length), upper-cases, explains O/0 and I/1. */
export function callBox(app, {prefill = '', buttonLabel = 'Call', id = 'call-target', autofocus = false, peerUsername = null} = {}) {
  const target = field({
    id,
    label: 'Their Call ID',
    hint: '8 characters, like K7XM2PQ9. Letters and digits that look alike (O/0, I/1) are never used.',
    attrs: {
      autocomplete: 'off', autocapitalize: 'characters', autocorrect: 'off', spellcheck: 'false',
      inputmode: 'text', placeholder: 'K7XM2PQ9', class: 'callid-input', enterkeyhint: 'go',
      ...(autofocus ? {'data-autofocus': ''} : {}),
    },
  });
  const status = h('p', {class: 'callbox-status', 'aria-live': 'polite'});
  const button = h('button', {class: 'btn call', type: 'submit'}, icon('phone', 20), h('span', {text: buttonLabel}));
  target.input.value = prefill;

  const check = (final) => {
    const result = checkCallId(target.input.value);
    if (result.error) {
      target.setError(result.error);
      status.textContent = '';
    } else if (final && !result.valid) {
      target.setError(result.value ? `A Call ID has 8 characters. ${result.hint}` : 'Type the Call ID of the person to call.');
      status.textContent = '';
    } else {
      target.setError('');
      status.textContent = result.value ? result.hint : '';
      status.classList.toggle('ok', result.valid);
    }
    return result;
  };
  target.input.addEventListener('input', () => {
    const input = target.input;
    const start = input.selectionStart;
    const upper = input.value.toUpperCase();
    if (upper !== input.value) {
      input.value = upper;
      if (start !== null) input.setSelectionRange(start, start);
    }
    check(false);
  });

  const form = h('form', {class: 'callbox', novalidate: true, 'aria-label': 'Call someone'},
    target.node, status, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = check(true);
    if (!result.valid) {
      target.input.focus();
      return;
    }
    target.input.value = result.value;
    try {
      // The invite page knows which account owns the prefilled Call ID: show its name while it rings.
      await app.phone.call(result.value, peerUsername && result.value === prefill ? peerUsername : null);
    } catch (err) {
      target.setError(err.message);
      target.input.focus();
    }
  });
  if (prefill) check(false);
  return {node: form, input: target.input};
}

export function homeView(app) {
  const outcome = app.outcome;
  app.outcome = null;
  const node = h('div', {class: 'page home'});
  if (outcome) {
    const title = outcome.kind === 'error' ? (outcome.duration !== null ? 'Call dropped' : 'The call did not work')
      : outcome.kind === 'warn' ? 'Call declined' : 'Call over';
    let message = outcome.message;
    if (/is not online$/.test(message)) message += '. Check the Call ID, or ask them to open OpenCall and try again.';
    node.append(banner(message, outcome.kind === 'info' ? 'info' : outcome.kind, {title, onDismiss: () => {}}));
    const last = node.lastChild;
    last.dataset.autofocus = '';
    last.dataset.outcome = outcome.kind;
  }
  if (!window.isSecureContext) {
    node.append(banner('This page is not on a secure (https://) address, so the browser will not allow the ' +
      'microphone. Open the box’s https:// address — see “Trust this box”.', 'warn'));
  }

  // -- my Call ID ---------------------------------------------------------------------------------------
  const idText = h('span', {class: 'callid-value', id: 'my-call-id'});
  const statusText = h('span', {class: 'status-text'});
  const statusLine = h('p', {class: 'status-line', role: 'status'}, h('span', {class: 'dot', 'aria-hidden': 'true'}), statusText);
  const note = h('p', {class: 'muted small'});
  const copy = copyButton(app, () => app.signaling.callId, {label: 'Copy', what: 'Call ID', className: 'btn secondary copy-id'});

  const name = field({
    id: 'display-name',
    label: 'Your name',
    hint: 'Shown to the people you call. Leave empty to stay anonymous.',
    attrs: {autocomplete: 'nickname', maxlength: '32', placeholder: 'e.g. Alex', enterkeyhint: 'done'},
  });
  name.input.value = app.signaling.displayName;
  const saved = h('span', {class: 'saved', 'aria-live': 'polite'});
  const saveName = () => {
    const clean = app.setDisplayName(name.input.value);
    if (clean !== name.input.value) name.input.value = clean;
    saved.textContent = 'Saved';
    setTimeout(() => {
      saved.textContent = '';
    }, 1500);
  };
  name.input.addEventListener('change', saveName);
  name.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      name.input.blur();
    }
  });
  name.node.querySelector('label').append(' ', saved);

  const idCard = card(
    h('h1', {class: 'card-title', text: 'Your Call ID'}),
    h('div', {class: 'callid-row'}, idText, copy),
    statusLine,
    note,
    name.node,
  );
  idCard.classList.add('id-card');

  const refresh = () => {
    const {status} = app.signaling;
    // An anonymous Call ID dies with its connection: the next one is new. A permanent one stays shown.
    const callId = status === 'online' || app.me.authenticated ? app.signaling.callId : null;
    idText.textContent = callId || '········';
    idText.classList.toggle('pending', !callId);
    idText.setAttribute('aria-label', callId ? `Your Call ID: ${callId.split('').join(' ')}` : 'Your Call ID is not known yet');
    copy.disabled = !callId;
    statusLine.dataset.state = status;
    statusText.textContent = status === 'online' && callId
      ? 'Online — people can call you now.'
      : status === 'offline' ? 'Offline — cannot reach the box. Retrying…' : 'Connecting to the box…';
    note.textContent = app.me.authenticated
      ? `This is your permanent Call ID, signed in as ${app.me.username}.`
      : 'This Call ID is temporary: it changes each time you open OpenCall. Sign in for a permanent one.';
  };
  refresh();
  app.addEventListener('connection', refresh);
  app.addEventListener('me', refresh);

  // -- call someone -------------------------------------------------------------------------------------
  const box = callBox(app, {prefill: app.lastTarget});
  const callCard = card(h('h2', {class: 'card-title', text: 'Call someone'}), box.node);

  node.append(idCard, callCard);

  // -- notifications --------------------------------------------------------------------------------------
  if ('Notification' in window && Notification.permission === 'default') {
    const enable = h('button', {class: 'btn secondary', type: 'button'}, icon('bell', 18), h('span', {text: 'Turn on call alerts'}));
    const tip = card(
      h('h2', {class: 'card-title small-title', text: 'Hear about calls in the background'}),
      h('p', {class: 'muted', text: 'Allow notifications and OpenCall shows one when someone calls while this tab is hidden.'}),
      enable,
    );
    enable.addEventListener('click', async () => {
      const result = await Notification.requestPermission();
      tip.replaceChildren(h('p', {class: 'muted', text: result === 'granted'
        ? 'Call alerts are on.' : 'Call alerts stay off. You can change this in the browser’s site settings.'}));
    });
    node.append(tip);
  }

  const accountTip = h('p', {class: 'center muted account-tip'},
    'Want a permanent Call ID and invite links? ',
    h('a', {href: '/register', text: 'Create an account'}), ' or ', h('a', {href: '/login', text: 'sign in'}), '.');
  node.append(accountTip);
  const refreshTip = () => {
    accountTip.hidden = app.me.authenticated;
  };
  refreshTip();
  app.addEventListener('me', refreshTip);

  return {
    node,
    title: 'Call',
    destroy() {
      app.removeEventListener('connection', refresh);
      app.removeEventListener('me', refresh);
      app.removeEventListener('me', refreshTip);
    },
  };
}
