// Who may ring you (docs/api.md "Who is calling, and who may ring you"): the blocked Call IDs and the
// "Do not disturb from strangers" switch, kept in one store that the dashboard's panels share.

import {api} from '../api.js';
import {normalize} from '../callid.js';
import {h, icon} from '../dom.js';
import {banner, card, field, timeElement} from './common.js';

/** The user's blocks as the server last answered them; `change` after every answer. Errors are thrown as they come. */
export class BlockStore extends EventTarget {
  constructor() {
    super();
    this.strangers = false;
    this.blocked = [];
    this.loaded = false;
  }

  has(callId) {
    return this.blocked.some((entry) => entry.callId === callId);
  }

  load() {
    return this.apply(api('/api/blocks'));
  }

  block(callId) {
    return this.apply(api('/api/blocks', {method: 'POST', body: {callId}}));
  }

  unblock(callId) {
    return this.apply(api(`/api/blocks/${encodeURIComponent(callId)}`, {method: 'DELETE'}));
  }

  setStrangers(blocked) {
    return this.apply(api('/api/blocks/strangers', {method: 'PUT', body: {blocked}}));
  }

  async apply(request) {
    const answer = await request;
    this.strangers = Boolean(answer.strangers);
    this.blocked = Array.isArray(answer.blocked) ? answer.blocked : [];
    this.loaded = true;
    this.dispatchEvent(new Event('change'));
    return this;
  }
}

/** The "Blocked callers" panel: the strangers switch, a Call ID to block, the list with Unblock buttons. */
export function blocksCard(app, store) {
  const status = h('div', {class: 'blocks-status'});
  const show = (message, kind) => status.replaceChildren(banner(message, kind));

  const strangers = h('input', {type: 'checkbox', role: 'switch', id: 'block-strangers', class: 'switch-input',
    'aria-describedby': 'block-strangers-hint', disabled: true});
  strangers.addEventListener('change', async () => {
    const wanted = strangers.checked;
    strangers.disabled = true;
    status.replaceChildren();
    try {
      await store.setStrangers(wanted);
      app.announce(wanted ? 'Strangers can no longer ring you' : 'Strangers can ring you again');
    } catch (err) {
      strangers.checked = !wanted;
      show(err.message, 'error');
    } finally {
      strangers.disabled = false;
    }
  });
  const switchRow = h('div', {class: 'switch-row'},
    h('label', {class: 'switch', for: 'block-strangers'}, strangers, h('span', {class: 'switch-track', 'aria-hidden': 'true'}),
      h('span', {class: 'switch-label', text: 'Do not disturb from strangers'})),
    h('p', {class: 'field-hint', id: 'block-strangers-hint', text: 'Callers without an account cannot ring you. ' +
      'Someone who opened one of your invite links still can, until the link expires or you revoke it.'}));

  const target = field({id: 'block-call-id', label: 'Block a Call ID',
    hint: 'Their calls then ring nobody: they hear no answer, as if you were away.',
    attrs: {autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', placeholder: 'K7XM2PQ9',
      class: 'mono-input'}});
  const add = h('button', {class: 'btn secondary', type: 'submit'}, icon('block', 18), h('span', {text: 'Block'}));
  const form = h('form', {class: 'block-form', novalidate: true},
    target.node, add);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const callId = normalize(target.input.value);
    add.disabled = true;
    status.replaceChildren();
    try {
      await store.block(callId);
      target.input.value = '';
      show(`Blocked ${callId}.`, 'ok');
      app.announce(`Blocked ${callId}`);
    } catch (err) {
      show(err.message, 'error');
      target.input.focus();
    } finally {
      add.disabled = false;
    }
  });

  const list = h('ul', {class: 'blocked-list', 'aria-label': 'Blocked callers'});
  const empty = h('p', {class: 'muted small list-empty', text: 'Nobody is blocked.'});
  const render = () => {
    strangers.checked = store.strangers;
    strangers.disabled = !store.loaded;
    empty.hidden = !store.loaded || store.blocked.length > 0;
    list.replaceChildren(...store.blocked.map((entry) => {
      const unblock = h('button', {class: 'btn ghost', type: 'button', 'aria-label': `Unblock ${entry.callId}`, text: 'Unblock'});
      unblock.addEventListener('click', async () => {
        unblock.disabled = true;
        status.replaceChildren();
        try {
          await store.unblock(entry.callId);
          show(`Unblocked ${entry.callId}.`, 'ok');
          app.announce(`Unblocked ${entry.callId}`);
        } catch (err) {
          unblock.disabled = false;
          show(err.message, 'error');
        }
      });
      const label = entry.label || 'A caller not seen yet';
      return h('li', {class: 'blocked-item', dataset: {callId: entry.callId}},
        h('span', {class: `blocked-label${/^Unverified: /.test(label) ? ' unverified' : ''}`, text: label}),
        h('span', {class: 'blocked-id', text: entry.callId}),
        h('span', {class: 'when'}, 'Blocked ', timeElement(entry.blockedAt)),
        unblock);
    }));
  };
  store.addEventListener('change', render);
  render();
  store.load().catch((err) => show(`Could not load your blocked callers: ${err.message}`, 'error'));

  const node = card(h('h2', {class: 'card-title', text: 'Blocked callers'}), switchRow, form, status, empty, list);
  node.id = 'blocks';
  return {node, destroy: () => store.removeEventListener('change', render)};
}
