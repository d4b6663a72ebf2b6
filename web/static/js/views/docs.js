// The API docs page: the REST and Socket.IO contract (docs/api.md), with this box's own origin filled in.

import {h} from '../dom.js';

function table(headers, rows) {
  const head = h('thead', {}, h('tr', {}, headers.map((text) => h('th', {scope: 'col', text}))));
  const cells = (row) => row.map((cell, i) => (i === 0 ? h('th', {scope: 'row'}, code(cell)) : h('td', {}, rich(cell))));
  const body = h('tbody', {}, rows.map((row) => h('tr', {}, cells(row))));
  return h('div', {class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': headers.join(', ')},
    h('table', {}, head, body));
}

/** `backticks` in a string become <code>. */
function rich(text) {
  return String(text).split(/(`[^`]+`)/).filter(Boolean)
    .map((part) => (part.startsWith('`') ? h('code', {text: part.slice(1, -1)}) : part));
}

function code(text) {
  if (text.endsWith(' *')) return [h('code', {text: text.slice(0, -2)}), ' ', h('span', {class: 'chip key', text: 'API key'})];
  return /^[A-Z]+ \//.test(text) || /^[a-z-]+$/.test(text) ? h('code', {text}) : rich(text);
}

function pre(text) {
  return h('pre', {class: 'code', tabindex: '0'}, h('code', {text}));
}

function section(id, title, ...children) {
  return h('section', {class: 'doc-section', id, 'aria-labelledby': `${id}-h`},
    h('h2', {id: `${id}-h`, text: title}), ...children);
}

export function docsView() {
  const base = location.origin;
  const toc = [
    ['auth', 'Authentication'], ['rest', 'REST endpoints'], ['examples', 'Examples'],
    ['socket', 'Socket.IO signaling'], ['walkthrough', 'Client walkthrough'], ['errors', 'Errors'],
  ];
  const node = h('div', {class: 'page docs'},
    h('header', {class: 'page-head'}, h('div', {},
      h('h1', {text: 'OpenCall API'}),
      h('p', {class: 'muted'}, 'Everything the web app does, your own scripts and apps can do too. Base URL: ',
        h('code', {text: base}), '. Requests with a body send ', h('code', {text: 'Content-Type: application/json'}),
        '; every answer is JSON, errors are ', h('code', {text: '{"error": "message"}'}), '.'))),
    h('nav', {class: 'toc card', 'aria-label': 'On this page'},
      h('ul', {}, toc.map(([id, title]) => h('li', {}, h('a', {href: `#${id}`, text: title}))))),

    section('auth', 'Authentication',
      h('p', {}, 'Each account has a personal API key (find it on your ', h('a', {href: '/dashboard', text: 'dashboard'}),
        '). Send it on every request as ', h('code', {text: 'x-api-key: oc_…'}), ' or ',
        h('code', {text: 'Authorization: Bearer oc_…'}), ', and on the Socket.IO connection as ',
        h('code', {text: "io(url, { auth: { apiKey: 'oc_…' } })"}), '. Endpoints marked ', h('span', {class: 'chip key', text: 'API key'}), ' need it (or the website’s session) and answer ',
        h('code', {text: '401 {"error": "Not authenticated"}'}), ' without it. Rotating the key stops the old one at once.'),
      h('p', {}, 'A Call ID is 8 characters from ', h('code', {text: 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'}),
        ' (no I, O, 0 or 1), e.g. ', h('code', {text: 'K7XM2PQ9'}), '. Signed-in clients keep one permanent Call ID; ' +
        'anonymous connections get a fresh one each time.')),

    section('rest', 'REST endpoints', table(['Endpoint', 'What it does'], [
      ['POST /api/auth/register', 'Create an account `{username, email, password}` and start a session. `409` if taken.'],
      ['POST /api/auth/login', 'Log in with `{username, password}`. `401` "Invalid username or password".'],
      ['POST /api/auth/logout', 'End the current session.'],
      ['GET /api/auth/me', '`{authenticated, username, email}` of the current session.'],
      ['GET /api/key *', 'The current API key `{apiKey}`.'],
      ['POST /api/key/regenerate *', 'Rotate the API key; the old one stops working immediately.'],
      ['POST /api/invite/generate *', 'A one-time invite link `{token, url}`, valid 24 hours.'],
      ['GET /api/invite/:token *', '`{creatorUsername, creatorCallId, online, expiresAt}`; `404` unknown, `410` expired, used or revoked.'],
      ['GET /api/invite/:token/preview', 'The same, for the invite page without an account.'],
      ['GET /api/invites *', 'Your unexpired invites, newest first: `token`, `url`, `createdAt`, `expiresAt`, `claimedAt`, `revokedAt`.'],
      ['DELETE /api/invite/:token *', 'Revoke one of your invites, used or not: from then on it answers `410` to everyone.'],
      ['GET /api/call-history *', 'Up to 50 recent calls, newest first: `direction`, `peer`, `peerUsername` (the account, or null), `peerCallId`, `status`, `startedAt` (UTC), `durationSeconds`.'],
      ['GET /api/blocks *', 'Who may not ring you: `{strangers, blocked: [{callId, label, blockedAt}]}`.'],
      ['POST /api/blocks *', 'Block a Call ID `{callId}`: its calls ring nobody and end as “did not answer”.'],
      ['DELETE /api/blocks/:callId *', 'Unblock a Call ID.'],
      ['PUT /api/blocks/strangers *', '`{blocked: true}`: do not disturb from callers without an account (invite holders excepted).'],
      ['POST /api/contact', 'Send `{subject, email, message}` to the people who run this box.'],
      ['POST /api/client-log', 'Ship up to 200 log lines `{lines: [...]}` to the server log.'],
      ['GET /api/ice-config', 'STUN/TURN servers with fresh credentials: pass the object to `new RTCPeerConnection()`.'],
      ['GET /api/server-info', '`{tls, version}`: how this box serves HTTPS.'],
    ])),

    section('examples', 'Examples',
      h('p', {text: 'Create an account and read your key with the session cookie:'}),
      pre(`curl -X POST ${base}/api/auth/register -H 'Content-Type: application/json' -c cookies.txt \\
  -d '{"username":"alice","email":"alice@example.com","password":"secret123"}'
curl ${base}/api/key -b cookies.txt`),
      h('p', {text: 'Then use the key:'}),
      pre(`curl ${base}/api/call-history -H 'x-api-key: oc_…'
curl -X POST ${base}/api/invite/generate -H 'Authorization: Bearer oc_…'`),
      h('p', {text: 'Answer of the call history:'}),
      pre(`{ "calls": [
  { "direction": "outgoing", "peer": "bob", "status": "answered",
    "startedAt": "2026-06-16 09:12:44", "durationSeconds": 184 } ] }`)),

    section('socket', 'Socket.IO signaling',
      h('p', {}, 'Connect to ', h('code', {text: base}), ' with the socket.io client (served at ',
        h('a', {href: '/socket.io/socket.io.js', 'data-external': '', text: '/socket.io/socket.io.js'}),
        '). The server relays the WebRTC handshake; audio then flows between the two browsers, or through this box’s TURN relay.'),
      h('h3', {text: 'Client → server'}),
      table(['Event', 'Payload', 'Effect'], [
        ['register', '`{displayName}` (optional, ≤ 32 chars)', 'Get a Call ID: answered with `registered`.'],
        ['call', '`{targetCallId, offer}`', 'Rings the target (`incoming-call`) or answers `call-error`.'],
        ['answer', '`{targetCallId, answer}`', 'After accepting: the caller gets `call-answered`.'],
        ['reject', '`{targetCallId}`', 'Decline: the caller gets `call-rejected`.'],
        ['hangup', '`{targetCallId}`', 'End the call: the other side gets `call-ended`.'],
        ['update-name', '`{displayName}`', 'Change your name without a new Call ID.'],
        ['ice-candidate', '`{targetCallId, candidate}`', 'Relay a trickled ICE candidate.'],
        ['renegotiate', '`{targetCallId, description}`', 'This box’s addition: a new offer or answer during an active call (ICE restart); the other side gets `renegotiate`.'],
      ]),
      h('h3', {text: 'Server → client'}),
      table(['Event', 'Payload', 'Meaning'], [
        ['registered', '`{callId}`', 'Your Call ID.'],
        ['incoming-call', '`{callerCallId, callerDisplayName, callerUsername, offer}`', 'Someone is calling: accept or reject. `callerUsername` is the account the caller is signed in to, `null` without one: the typed `callerDisplayName` proves nothing.'],
        ['call-answered', '`{answer, calleeDisplayName, calleeUsername}`', 'Apply with `setRemoteDescription`.'],
        ['call-rejected', '`{}`', 'The callee declined.'],
        ['call-ended', '`{}`', 'The other side hung up or disconnected.'],
        ['ice-candidate', '`{candidate}`', 'Pass to `pc.addIceCandidate()`.'],
        ['renegotiate', '`{description}`', 'Set it; if it is an offer, answer with `renegotiate`.'],
        ['call-error', '`{message}`', 'For example “K9ZX4MT2 is not online”.'],
      ])),

    section('walkthrough', 'Client walkthrough',
      h('ol', {class: 'steps'},
        h('li', {}, 'Connect (with the API key for your permanent Call ID), emit ', h('code', {text: 'register'}),
          ' on every ', h('code', {text: 'connect'}), ' and keep the ', h('code', {text: 'callId'}), '.'),
        h('li', {}, 'Before each call fetch ', h('code', {text: '/api/ice-config'}), ' (credentials expire), get the microphone, ' +
          'create the peer connection, trickle ', h('code', {text: 'onicecandidate'}), ' as ', h('code', {text: 'ice-candidate'}),
          ', send the offer with ', h('code', {text: 'call'}), '.'),
        h('li', {}, 'On ', h('code', {text: 'incoming-call'}), ' ring; on accept build the peer connection the same way, ' +
          'set the offer, create and send the ', h('code', {text: 'answer'}), '.'),
        h('li', {}, 'Queue candidates that arrive before the remote description is set, then add them.'),
        h('li', {}, 'To end: emit ', h('code', {text: 'hangup'}), ', close the peer connection, stop the tracks.')),
      pre(`const socket = io('${base}', { auth: { apiKey: 'oc_…' } });
socket.on('connect', () => socket.emit('register', { displayName: 'Alice' }));
socket.on('registered', ({ callId }) => console.log('my Call ID', callId));
socket.on('incoming-call', async ({ callerCallId, offer }) => { /* ring, then answer or reject */ });`)),

    section('errors', 'Errors', table(['Situation', 'You receive', 'What to do'], [
      ['Target not online (or a typo)', '`call-error`', 'Show the message, go back.'],
      ['The callee declined', '`call-rejected`', 'Show it, go back.'],
      ['The other side hung up', '`call-ended`', 'Clean up, go back.'],
      ['WebRTC connection failed', '`connectionState` `failed`', 'Clean up, go back.'],
      ['Server connection lost mid-call', 'socket `disconnect`', 'The call is over: reconnect and register again.'],
    ]), h('p', {class: 'muted'}, 'HTTP errors: 400 invalid input (the message names the field), 401 not authenticated, ' +
      '403 cross-site request, 404 not found, 409 already taken, 410 invite expired or used, 413 body too large, ' +
      '429 too many requests (see Retry-After).')),
  );
  return {node, title: 'API'};
}
