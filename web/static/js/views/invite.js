// /invite/<token>: works without an account (GET /api/invite/:token/preview). Shows who invited you and
// whether they are online, with their Call ID prefilled in a call box; friendly pages for 404 and 410.

import {api} from '../api.js';
import {h, icon, initials} from '../dom.js';
import {banner, card} from './common.js';
import {callBox} from './home.js';

const POLL_MS = 5000;

function problemPage(status, message) {
  let title = 'This invite link does not work';
  let text = 'Ask the person who sent it for a new one.';
  if (status === 404) {
    title = 'This invite link doesn’t exist';
    text = 'Check that you opened the whole link. If it still does not work, ask for a new one.';
  } else if (status === 410 && /used/i.test(message)) {
    title = 'This invite was already used';
    text = 'Invite links work for one person only. Ask the person who sent it for a new link.';
  } else if (status === 410 && /revoked/i.test(message)) {
    title = 'This invite was withdrawn';
    text = 'The person who sent it has revoked this link. Ask them for a new one if you still need to call.';
  } else if (status === 410) {
    title = 'This invite has expired';
    text = 'Invite links last 24 hours. Ask the person who sent it for a new one.';
  } else if (message) {
    text = `${message}. Try again in a moment.`;
  }
  return card(
    h('div', {class: 'empty-art', 'aria-hidden': 'true'}, icon('link', 40)),
    h('h1', {class: 'card-title center', text: title}),
    h('p', {class: 'muted center', text}),
    h('p', {class: 'center'}, h('a', {class: 'btn secondary', href: '/', text: 'Go to OpenCall'})),
  );
}

export function inviteView(app, {token}) {
  const node = h('div', {class: 'page narrow invite'},
    h('h1', {class: 'visually-hidden', text: 'Invite'}),
    h('p', {class: 'muted center', text: 'Opening the invite…'}));
  let timer = null;
  let alive = true;
  let built = null;

  const render = (invite) => {
    const name = invite.creatorUsername;
    const own = app.me.authenticated && app.me.username === name;
    if (!built) {
      const presence = h('p', {class: 'presence', role: 'status'});
      const waiting = h('p', {class: 'muted center small'});
      const slot = h('div', {class: 'invite-call'});
      const cardNode = card(
        h('div', {class: 'avatar big', 'aria-hidden': 'true', text: initials(name)}),
        h('h1', {class: 'card-title center'}, `${name} invited you to a call`),
        presence, slot, waiting,
        h('p', {class: 'muted center small', text: 'No account needed. Your browser will ask to use the microphone.'}),
      );
      node.replaceChildren(cardNode);
      built = {presence, waiting, slot, callId: null};
    }
    const {presence, waiting, slot} = built;
    presence.dataset.online = String(invite.online);
    presence.replaceChildren(h('span', {class: 'dot', 'aria-hidden': 'true'}),
      invite.online ? `${name} is online` : `${name} is offline right now`);
    if (own) {
      slot.replaceChildren(banner('This is your own invite link. Send it to someone: the first person to open it can call you.', 'info'));
      waiting.textContent = '';
    } else if (invite.online && invite.creatorCallId) {
      if (built.callId !== invite.creatorCallId) {
        built.callId = invite.creatorCallId;
        const box = callBox(app, {prefill: invite.creatorCallId, buttonLabel: `Call ${name}`, id: 'invite-target', peerUsername: name});
        box.node.classList.add('prefilled');
        slot.replaceChildren(box.node);
      }
      waiting.textContent = '';
    } else {
      built.callId = null;
      slot.replaceChildren();
      waiting.textContent = 'This page checks again every few seconds — keep it open and the Call button appears when they are back.';
    }
  };

  const load = async () => {
    try {
      const invite = await api(`/api/invite/${encodeURIComponent(token)}/preview`);
      if (!alive) return;
      render(invite);
      timer = setTimeout(load, POLL_MS);
    } catch (err) {
      if (!alive) return;
      if (err.status === 404 || err.status === 410) {
        node.replaceChildren(problemPage(err.status, err.message));
        return;
      }
      if (!built) node.replaceChildren(problemPage(err.status, err.message));
      timer = setTimeout(load, POLL_MS * 2);
    }
  };
  load();

  return {
    node,
    title: 'Invite',
    destroy() {
      alive = false;
      clearTimeout(timer);
    },
  };
}
