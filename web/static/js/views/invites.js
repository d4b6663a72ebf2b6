// The dashboard's invite links (docs/api.md "Invites"): make one, see each one's state (waiting, claimed,
// revoked) and revoke it, before or after someone used it.

import {api} from '../api.js';
import {h, icon} from '../dom.js';
import {banner, card, copyButton, timeElement} from './common.js';

function inviteState(invite) {
  if (invite.revokedAt) return 'revoked';
  return invite.claimedAt ? 'claimed' : 'waiting';
}

function stateLine(invite) {
  const state = inviteState(invite);
  const parts = {
    waiting: ['Waiting for someone to open it · expires ', timeElement(invite.expiresAt)],
    claimed: ['Claimed at ', timeElement(invite.claimedAt), ' · works for that person until ', timeElement(invite.expiresAt)],
    revoked: ['Revoked at ', timeElement(invite.revokedAt)],
  }[state];
  return h('p', {class: `invite-state ${state}`}, ...parts);
}

export function invitesCard(app) {
  const list = h('ul', {class: 'invite-list', 'aria-label': 'Your invite links'});
  const status = h('div');
  const empty = h('p', {class: 'muted small list-empty', text: 'No invite links yet.'});
  empty.hidden = true;
  const generate = h('button', {class: 'btn primary', type: 'button'}, icon('link', 18), h('span', {text: 'New invite link'}));

  const item = (invite) => {
    const state = inviteState(invite);
    const url = h('input', {class: 'invite-url', type: 'text', readonly: true, value: invite.url,
      'aria-label': 'Invite link', onfocus: (event) => event.target.select()});
    const actions = h('div', {class: 'row'});
    if (state !== 'revoked') {
      actions.append(copyButton(app, () => invite.url, {what: 'Invite link'}));
      if (navigator.share) {
        actions.append(h('button', {class: 'btn secondary', type: 'button', onclick: async () => {
          try {
            await navigator.share({title: 'Call me on OpenCall', text: `${app.me.username} invites you to a call`, url: invite.url});
          } catch {
            // the user closed the share sheet
          }
        }}, icon('share', 18), h('span', {text: 'Share'})));
      }
      const revoke = h('button', {class: 'btn danger-outline', type: 'button', text: 'Revoke'});
      revoke.addEventListener('click', async () => {
        revoke.disabled = true;
        status.replaceChildren();
        try {
          await api(`/api/invite/${encodeURIComponent(invite.token)}`, {method: 'DELETE'});
          app.announce('Invite link revoked');
          await load();
        } catch (err) {
          revoke.disabled = false;
          status.replaceChildren(banner(err.message, 'error'));
        }
      });
      actions.append(revoke);
    }
    return h('li', {class: `invite-item ${state}`, dataset: {state, token: invite.token}}, url, stateLine(invite),
      actions.childElementCount ? actions : null);
  };

  const load = async () => {
    try {
      const {invites} = await api('/api/invites');
      list.replaceChildren(...invites.map(item));
      empty.hidden = invites.length > 0;
    } catch (err) {
      status.replaceChildren(banner(`Could not load your invite links: ${err.message}`, 'error'));
    }
  };

  generate.addEventListener('click', async () => {
    generate.disabled = true;
    status.replaceChildren();
    try {
      const invite = await api('/api/invite/generate', {method: 'POST'});
      await load();
      const made = [...list.children].find((li) => li.dataset.token === invite.token);
      if (made) made.querySelector('.invite-url').focus();
      app.announce('Invite link created');
    } catch (err) {
      status.replaceChildren(banner(err.message, 'error'));
    } finally {
      generate.disabled = false;
    }
  });
  load();

  const node = card(
    h('h2', {class: 'card-title', text: 'Invite links'}),
    h('p', {class: 'muted', text: 'Send a link to someone without an account. It works for the first person who ' +
      'opens it, for 24 hours, and opens a page with a button that calls you. You can revoke it at any time.'}),
    generate, status, empty, list,
  );
  node.id = 'invites';
  return node;
}
