// Pieces shared by several views.

import {copyText, h, icon} from '../dom.js';

/** A status/error banner; errors use role=alert so they are announced at once. */
export function banner(message, kind = 'info', {onDismiss, title} = {}) {
  const role = kind === 'error' || kind === 'warn' ? 'alert' : 'status';
  const node = h('div', {class: `banner ${kind}`, role, tabindex: '-1'},
    icon(kind === 'error' || kind === 'warn' ? 'warn' : kind === 'ok' ? 'check' : 'info', 20),
    h('p', {}, title ? h('strong', {class: 'banner-title', text: title}) : null, message));
  if (onDismiss) {
    node.append(h('button', {class: 'banner-close', type: 'button', 'aria-label': 'Dismiss', onclick: () => {
      node.remove();
      onDismiss();
    }}, '×'));
  }
  return node;
}

/** A Copy button that says "Copied" for a moment and tells screen readers. */
export function copyButton(app, getText, {label = 'Copy', what = 'Text', className = 'btn secondary'} = {}) {
  const text = h('span', {text: label});
  const button = h('button', {class: className, type: 'button', 'aria-label': `${label} ${what.toLowerCase()}`}, icon('copy', 18), text);
  button.addEventListener('click', async () => {
    const value = getText();
    if (!value) return;
    const ok = await copyText(value);
    if (ok) {
      text.textContent = 'Copied';
      button.classList.add('done');
      app.announce(`${what} copied`);
      setTimeout(() => {
        text.textContent = label;
        button.classList.remove('done');
      }, 1800);
    } else {
      app.toast('Copy failed: select the text and copy it by hand.', 'error');
    }
  });
  return button;
}

/** A labelled form field with its hint and error line wired up with aria-describedby. */
export function field({id, label, type = 'text', hint = '', attrs = {}, multiline = false}) {
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const input = h(multiline ? 'textarea' : 'input', {
    id, name: id, ...(multiline ? {} : {type}), 'aria-describedby': `${hintId} ${errorId}`, ...attrs,
  });
  const error = h('p', {class: 'field-error', id: errorId, 'aria-live': 'polite'});
  const node = h('div', {class: 'field'},
    h('label', {for: id, text: label}), input, hint ? h('p', {class: 'field-hint', id: hintId, text: hint}) : null, error);
  return {
    node,
    input,
    setError(message) {
      error.textContent = message ? message[0].toUpperCase() + message.slice(1) : '';
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

export function card(...children) {
  return h('section', {class: 'card'}, ...children);
}

export function formatCallId(callId) {
  return callId || '';
}

/** "2026-06-16 09:12:44" (UTC, no suffix) -> a Date. */
export function parseUtc(text) {
  const date = new Date(`${String(text).replace(' ', 'T')}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A `<time>` for a server timestamp, ISO ("2026-06-16T09:30:00.000Z") or api.md's "2026-06-16 09:12:44" (UTC). */
export function timeElement(text) {
  const date = /T/.test(String(text)) ? new Date(text) : parseUtc(text);
  if (!date || Number.isNaN(date.getTime())) return document.createTextNode(String(text));
  return h('time', {datetime: date.toISOString(), text: date.toLocaleString([], {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'})});
}
