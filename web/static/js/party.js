// How the other party of a call is named (docs/api.md "Who is calling"): by its account when the server vouches
// for it, else as "Unverified: <typed name or Call ID>", so a typed "Mom" never looks like an account.

import {h, icon} from './dom.js';

/**
 * {username, displayName, callId} → {name, alias, verified}.
 * `username` is the account the server says the party is signed in to: a string, null (no account: unverified),
 * or undefined (not known yet: a call we placed that nobody answered), which names it by what we dialled.
 * `alias` is the typed display name of a verified party when it differs from the account name.
 */
export function describeParty({username, displayName = null, callId}) {
  if (username) {
    return {name: username, alias: displayName && displayName !== username ? displayName : null, verified: true};
  }
  if (username === null) return {name: `Unverified: ${displayName || callId}`, alias: null, verified: false};
  return {name: displayName || callId, alias: null, verified: null};
}

/** The mark beside a party's name: a shield for an account, a warning for a name anyone could have typed. */
export function identityMark(party, {long = false} = {}) {
  if (party.verified === null) return null;
  const text = party.verified
    ? (long ? 'Signed-in account on this box' : 'Account')
    : (long ? 'Not signed in: anyone can type any name' : 'Unverified');
  return h('span', {class: `identity ${party.verified ? 'verified' : 'unverified'}`},
    icon(party.verified ? 'shield' : 'warn', 16), h('span', {text}));
}
