// "Trust this box": install the box's local CA certificate (/ca.crt) so phones accept its HTTPS address.

import {api} from '../api.js';
import {h, icon} from '../dom.js';
import {banner, card} from './common.js';

const PLATFORMS = [
  ['android', 'Android', [
    'Tap “Download the certificate” above.',
    'Open Settings → Security (or “Security & privacy”) → More security settings → Encryption & credentials → Install a certificate → CA certificate.',
    'Choose “Install anyway”, then pick the downloaded opencall-ca.crt.',
    'Open this box’s https:// address again in Chrome: the warning is gone.',
  ]],
  ['ios', 'iPhone and iPad', [
    'Open this page in Safari and tap “Download the certificate”; allow the configuration profile download.',
    'Open Settings → General → VPN & Device Management, tap the OpenCall profile and tap Install.',
    'Then Settings → General → About → Certificate Trust Settings: turn on full trust for the OpenCall certificate.',
    'Reload this box’s https:// address.',
  ]],
  ['windows', 'Windows', [
    'Download the certificate and double-click opencall-ca.crt.',
    'Click “Install Certificate…”, choose “Current User”, then “Place all certificates in the following store”.',
    'Browse to “Trusted Root Certification Authorities”, finish, and confirm the security warning.',
    'Restart the browser. Firefox: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import.',
  ]],
  ['macos', 'macOS', [
    'Download the certificate and double-click it: Keychain Access opens; add it to the “System” keychain.',
    'Double-click the OpenCall certificate in Keychain Access, open “Trust” and set “When using this certificate” to “Always Trust”.',
    'Close the window (enter your password) and restart the browser.',
  ]],
  ['linux', 'Linux', [
    'System-wide (Debian/Ubuntu): sudo cp opencall-ca.crt /usr/local/share/ca-certificates/ && sudo update-ca-certificates',
    'Chrome/Chromium: Settings → Privacy and security → Security → Manage certificates → Authorities → Import.',
    'Firefox: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import, tick “Trust this CA to identify websites”.',
  ]],
];

// Where a device shows a CA certificate's SHA-256 fingerprint, to compare it with the box's.
const COMPARE = [
  ['iPhone and iPad', 'Before you tap Install: Settings → General → VPN & Device Management → the OpenCall profile → ' +
    'More Details → the certificate → Fingerprints, SHA-256 (shown with spaces instead of colons). Once installed, ' +
    'Settings → General → About → Certificate Trust Settings lists it by name.'],
  ['Android', 'Settings → Security → Encryption & credentials → User credentials (or Trusted credentials → User) → ' +
    'tap the OpenCall certificate: its SHA-256 fingerprint is in the details.'],
  ['Computers', 'Open the downloaded file: macOS Keychain Access and Firefox’s certificate viewer show SHA-256; or run ' +
    'openssl x509 -in opencall-ca.crt -noout -fingerprint -sha256'],
];
const STANDING = new Set(['home.arpa', 'internal', 'local', 'localhost']);

/** A fingerprint's groups of eight bytes, so it fits a phone and is easy to compare. */
function groups(fingerprint) {
  const bytes = fingerprint.split(':');
  const found = [];
  for (let i = 0; i < bytes.length; i += 8) found.push(bytes.slice(i, i + 8).join(':'));
  return found;
}

/** A SHA-256 fingerprint in four lines of eight bytes. */
function fingerprintLines(fingerprint) {
  return h('p', {class: 'fingerprint', 'data-fingerprint': fingerprint},
    groups(fingerprint).map((line, i) => [i ? h('br') : null, h('code', {text: line})]));
}

/** A SHA-256 fingerprint inside a sentence: it may wrap between its groups of eight bytes. */
function fingerprintInline(fingerprint) {
  return h('span', {'data-fingerprint': fingerprint},
    groups(fingerprint).map((group, i) => [i ? ' ' : null, h('code', {text: group})]));
}

function caDetails(ca) {
  const own = (ca.permitted || []).filter((name) => !name.includes('/') && !STANDING.has(name));
  const names = [...own, 'names ending in .local, .home.arpa or .internal', 'localhost'];
  return [
    h('h2', {class: 'card-title small-title', text: 'Check the fingerprint'}),
    h('p', {text: `The certificate “${ca.name}” has this SHA-256 fingerprint:`}),
    fingerprintLines(ca.fingerprint),
    h('p', {text: 'Compare it with what the box itself shows: on the box, run sudo opencall doctor (the “local CA” ' +
      'line). This page reached you over a connection your device does not trust yet, so only the box’s own ' +
      'answer proves the certificate is the box’s. Then compare it with what your device shows:'}),
    h('ul', {class: 'steps'}, COMPARE.map(([who, where]) => h('li', {}, h('strong', {text: `${who}: `}), where))),
    h('p', {class: 'muted small', text: ca.permitted ? `This certificate can vouch only for this box: ${names.join(', ')} ` +
      'and private home-network addresses (192.168.x.x, 10.x.x.x, fd…). It cannot vouch for any website on the internet.' :
      'This certificate is from an older version and can vouch for any website: restart the box to replace it.'}),
  ];
}

function replacedNotice(ca, previous) {
  const message = h('span', {},
    `On ${previous.replaced} this box replaced its certificate authority “${previous.name}” with “${ca.name}”. ` +
    (previous.permitted ? 'The old one could not vouch for a new name of this box. ' :
      'The old one could vouch for any website; the new one only for this box. ') + 'The old one’s private key is ' +
    'destroyed, so it can no longer vouch for anything. On each device that trusted the old one: install the new ' +
    'certificate below, then remove the old one (SHA-256 ', fingerprintInline(previous.fingerprint), '): iPhone: ' +
    'Settings → General → VPN & Device Management → the old OpenCall profile → Remove Profile; Android: Settings → ' +
    'Security → Encryption & credentials → User credentials → the old OpenCall certificate → Remove.');
  return banner(message, 'warn', {title: 'This box has a new certificate authority. '});
}

function guessPlatform() {
  const ua = navigator.userAgent;
  if (/Android/i.test(ua)) return 'android';
  if (/iPhone|iPad|iPod/i.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return 'ios';
  if (/Windows/i.test(ua)) return 'windows';
  if (/Macintosh/i.test(ua)) return 'macos';
  return 'linux';
}

function steps() {
  const mine = guessPlatform();
  return h('div', {class: 'platforms'}, PLATFORMS.map(([id, title, items]) => h('details', {class: 'platform', open: id === mine},
    h('summary', {}, title, id === mine ? h('span', {class: 'chip', text: 'this device'}) : null),
    h('ol', {class: 'steps'}, items.map((text) => h('li', {text}))))));
}

export function trustView() {
  const status = h('div', {'aria-live': 'polite'}, h('p', {class: 'muted', text: 'Checking how this box serves HTTPS…'}));
  const download = h('a', {class: 'btn primary', href: '/ca.crt', download: 'opencall-ca.crt', 'data-external': ''},
    icon('shield', 18), h('span', {text: 'Download the certificate'}));
  const body = h('div', {class: 'stack'});
  const node = h('div', {class: 'page narrow trust'}, card(
    h('h1', {class: 'card-title', text: 'Trust this box'}),
    h('p', {text: 'Browsers only allow the microphone on secure (https://) pages. This OpenCall box can make its own ' +
      'certificate authority (CA), so it works on your Wi-Fi without the internet. Install its CA certificate once ' +
      'per device and the browser trusts the box — no more warnings.'}),
    status, body));

  const show = (info) => {
    const tls = info && info.tls;
    if (tls === 'auto') {
      const ca = info.ca;
      status.replaceChildren(banner('This box uses its own certificate authority. Install it on each phone or computer that calls.', 'info'));
      if (ca && info.previousCa) status.append(replacedNotice(ca, info.previousCa));
      body.replaceChildren(
        h('div', {class: 'row'}, download),
        h('p', {class: 'muted small', text: 'Only install a certificate from a box you run yourself or trust.'}),
        ...(ca ? caDetails(ca) : []),
        h('h2', {class: 'card-title small-title', text: 'Step by step'}),
        steps());
    } else if (tls === 'off') {
      status.replaceChildren(banner('This box is not using its own certificate: it serves plain HTTP (tls: off). ' +
        'There is nothing to install. Browsers allow the microphone only on https:// or on this computer itself ' +
        '(localhost), so turn HTTPS on (server.tls: auto) to call from phones, or put OpenCall behind your own HTTPS proxy.', 'warn'));
      body.replaceChildren();
    } else if (tls === 'files') {
      status.replaceChildren(banner('This box is not using its own certificate authority: it uses a certificate ' +
        'its operator provided. If that certificate comes from a public authority, there is nothing to install. ' +
        'Otherwise ask whoever runs the box for their CA certificate.', 'info'));
      body.replaceChildren();
    } else {
      status.replaceChildren(banner('Could not ask the box how it serves HTTPS. If your browser warns about this ' +
        'box’s certificate, download it below and follow the steps for your device.', 'warn'));
      body.replaceChildren(h('div', {class: 'row'}, download), steps());
    }
  };
  api('/api/server-info').then(show).catch(() => show(null));
  return {node, title: 'Trust this box'};
}
