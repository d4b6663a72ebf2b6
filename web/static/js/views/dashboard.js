// The account dashboard: permanent Call ID, invite links, blocked callers, API key (show/copy/rotate), call history.

import {api} from '../api.js';
import {formatDuration, h, icon} from '../dom.js';
import {describeParty, identityMark} from '../party.js';
import {BlockStore, blocksCard} from './blocks.js';
import {banner, card, copyButton, timeElement} from './common.js';
import {invitesCard} from './invites.js';

function maskKey(key) {
  return key ? `${key.slice(0, 3)}${'•'.repeat(Math.max(8, key.length - 7))}${key.slice(-4)}` : '';
}

function callIdCard(app) {
  const value = h('span', {class: 'callid-value', id: 'dash-call-id'});
  const copy = copyButton(app, () => app.signaling.callId, {what: 'Call ID'});
  const refresh = () => {
    value.textContent = app.signaling.callId || '········';
    value.classList.toggle('pending', !app.signaling.callId);
    copy.disabled = !app.signaling.callId;
  };
  refresh();
  app.addEventListener('connection', refresh);
  const node = card(
    h('h2', {class: 'card-title', text: 'Your permanent Call ID'}),
    h('div', {class: 'callid-row'}, value, copy),
    h('p', {class: 'muted small', text: 'It never changes. Anyone who has it can call you while OpenCall is open.'}),
  );
  return {node, destroy: () => app.removeEventListener('connection', refresh)};
}

function apiKeyCard(app) {
  let key = '';
  let shown = false;
  const value = h('code', {class: 'api-key', id: 'api-key'});
  const toggleText = h('span', {text: 'Show'});
  const toggle = h('button', {class: 'btn secondary', type: 'button', 'aria-pressed': 'false', 'aria-controls': 'api-key'},
    icon('eye', 18), toggleText);
  const copy = copyButton(app, () => key, {what: 'API key'});
  const rotate = h('button', {class: 'btn danger-outline', type: 'button'}, icon('refresh', 18), h('span', {text: 'Rotate…'}));
  const status = h('div');
  const render = () => {
    value.textContent = key ? (shown ? key : maskKey(key)) : 'Loading…';
    toggle.setAttribute('aria-pressed', String(shown));
    toggleText.textContent = shown ? 'Hide' : 'Show';
    value.setAttribute('aria-label', shown || !key ? `API key ${key}` : 'API key, hidden');
  };
  toggle.addEventListener('click', () => {
    shown = !shown;
    render();
  });

  const confirmText = h('p', {text: 'The current key stops working at once. Scripts and apps that use it are ' +
    'disconnected until you give them the new key. Your Call ID does not change.'});
  const cancel = h('button', {class: 'btn secondary', type: 'button', value: 'cancel', text: 'Keep the current key'});
  const confirm = h('button', {class: 'btn danger', type: 'button', text: 'Rotate key'});
  const dialog = h('dialog', {class: 'confirm', 'aria-labelledby': 'rotate-title', 'aria-describedby': 'rotate-desc'},
    h('h2', {id: 'rotate-title', text: 'Rotate your API key?'}),
    h('div', {id: 'rotate-desc'}, confirmText),
    h('div', {class: 'row end'}, cancel, confirm));
  cancel.addEventListener('click', () => dialog.close());
  rotate.addEventListener('click', () => {
    dialog.showModal();
    cancel.focus();
  });
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      const result = await api('/api/key/regenerate', {method: 'POST'});
      key = result.apiKey;
      shown = true;
      render();
      status.replaceChildren(banner('New API key ready. The old one no longer works.', 'ok'));
      app.announce('API key rotated');
    } catch (err) {
      status.replaceChildren(banner(err.message, 'error'));
    } finally {
      confirm.disabled = false;
      dialog.close();
      rotate.focus();
    }
  });

  api('/api/key').then((result) => {
    key = result.apiKey;
    render();
  }).catch((err) => {
    value.textContent = '';
    status.replaceChildren(banner(`Could not load the API key: ${err.message}`, 'error'));
  });
  render();
  return card(
    h('h2', {class: 'card-title', text: 'API key'}),
    h('p', {class: 'muted', text: 'For your own scripts and apps: send it as the x-api-key header, or as ' +
      'auth.apiKey on the Socket.IO connection. Anyone holding it can act as you.'}),
    h('div', {class: 'key-box'}, value),
    h('div', {class: 'row'}, toggle, copy, rotate),
    status, dialog,
    h('p', {class: 'small'}, h('a', {href: '/docs', text: 'How to use the API'})),
  );
}

const STATUS_TEXT = {answered: 'Answered', rejected: 'Declined', missed: 'Missed'};

/** How a history entry names the other party: its account name, else "Unverified: <typed name or Call ID>". */
function historyParty(call) {
  const callId = call.peerCallId || call.peer;
  return describeParty({username: call.peerUsername || null, displayName: call.peer !== callId ? call.peer : null, callId});
}

function historyCard(app, blocks) {
  const list = h('ol', {class: 'history', 'aria-label': 'Recent calls'});
  const status = h('p', {class: 'muted', 'aria-live': 'polite'});
  const problem = h('div');
  const reload = h('button', {class: 'btn ghost', type: 'button', 'aria-label': 'Refresh call history'},
    icon('refresh', 18), h('span', {text: 'Refresh'}));

  // Each entry's Block button says whether its Call ID is blocked now (the Blocked callers panel can change it).
  const syncBlockButtons = () => {
    for (const button of list.querySelectorAll('button[data-block]')) {
      const blocked = blocks.has(button.dataset.block);
      button.disabled = blocked || !blocks.loaded;
      button.textContent = blocked ? 'Blocked' : 'Block';
    }
  };
  const blockButton = (callId) => {
    const button = h('button', {class: 'btn ghost history-block', type: 'button', dataset: {block: callId},
      'aria-label': `Block ${callId}`, text: 'Block'});
    button.addEventListener('click', async () => {
      button.disabled = true;
      problem.replaceChildren();
      try {
        await blocks.block(callId);
        app.announce(`Blocked ${callId}`);
      } catch (err) {
        problem.replaceChildren(banner(err.message, 'error'));
        syncBlockButtons();
      }
    });
    return button;
  };

  const load = async () => {
    status.textContent = 'Loading…';
    try {
      const {calls} = await api('/api/call-history');
      list.replaceChildren(...calls.map((call) => {
        const outgoing = call.direction === 'outgoing';
        const party = historyParty(call);
        const mark = identityMark(party);
        const detail = call.status === 'answered' && call.durationSeconds !== null
          ? formatDuration(call.durationSeconds) : STATUS_TEXT[call.status] || call.status;
        return h('li', {class: `history-item ${call.status}`, dataset: {status: call.status, direction: call.direction}},
          h('span', {class: `dir ${call.direction}`, title: outgoing ? 'Outgoing' : 'Incoming'}, icon(outgoing ? 'out' : 'in', 18),
            h('span', {class: 'visually-hidden', text: outgoing ? 'Outgoing call to' : 'Incoming call from'})),
          h('span', {class: 'peer', dataset: {verified: String(party.verified)}, text: party.name}),
          h('span', {class: `chip ${call.status}`, text: STATUS_TEXT[call.status] || call.status}),
          h('span', {class: 'who'}, mark, party.alias ? h('span', {class: 'peer-alias', text: `“${party.alias}”`}) : null,
            call.peerCallId && !party.name.includes(call.peerCallId) ? h('span', {class: 'peer-id', text: call.peerCallId}) : null),
          call.peerCallId ? blockButton(call.peerCallId) : null,
          h('span', {class: 'when'}, timeElement(call.startedAt)),
          h('span', {class: 'duration', text: call.status === 'answered' ? detail : ''}));
      }));
      syncBlockButtons();
      status.textContent = calls.length ? '' : 'No calls yet. Calls you make or get while signed in show up here.';
    } catch (err) {
      status.textContent = `Could not load the call history: ${err.message}`;
    }
  };
  reload.addEventListener('click', load);
  blocks.addEventListener('change', syncBlockButtons);
  load();
  const node = card(
    h('div', {class: 'card-head'}, h('h2', {class: 'card-title', text: 'Recent calls'}), reload),
    status, problem, list);
  node.id = 'history';
  return {node, destroy: () => blocks.removeEventListener('change', syncBlockButtons)};
}

export function dashboardView(app) {
  const node = h('div', {class: 'page dashboard'});
  const cleanups = [];
  const build = () => {
    if (!app.meLoaded) {
      node.replaceChildren(h('h1', {class: 'visually-hidden', text: 'Your account'}), h('p', {class: 'muted center', text: 'Loading…'}));
      return;
    }
    if (!app.me.authenticated) {
      node.replaceChildren(h('h1', {class: 'visually-hidden', text: 'Your account'}));
      setTimeout(() => app.navigate('/login?next=/dashboard', {replace: true}), 0);
      return;
    }
    const logout = h('button', {class: 'btn secondary', type: 'button', text: 'Sign out'});
    logout.addEventListener('click', async () => {
      logout.disabled = true;
      try {
        await api('/api/auth/logout', {method: 'POST'});
      } catch (err) {
        app.toast(err.message, 'error');
      }
      await app.sessionChanged();
      app.toast('Signed out', 'ok');
      app.navigate('/');
    });
    const idCard = callIdCard(app);
    const blocks = new BlockStore();
    const blocked = blocksCard(app, blocks);
    const history = historyCard(app, blocks);
    cleanups.push(idCard.destroy, blocked.destroy, history.destroy);
    node.replaceChildren(
      h('header', {class: 'page-head'},
        h('div', {}, h('h1', {text: `Hi, ${app.me.username}`}), h('p', {class: 'muted', text: app.me.email || ''})),
        logout),
      h('div', {class: 'grid'},
        h('div', {class: 'col'}, idCard.node, invitesCard(app), blocked.node, apiKeyCard(app)),
        h('div', {class: 'col'}, history.node)),
    );
  };
  const onMe = () => build();
  build();
  if (!app.meLoaded) app.addEventListener('me', onMe, {once: true});
  return {
    node,
    title: 'Account',
    destroy() {
      app.removeEventListener('me', onMe);
      cleanups.forEach((fn) => fn());
    },
  };
}
