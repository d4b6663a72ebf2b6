// Contact form: POST /api/contact.

import {api} from '../api.js';
import {h} from '../dom.js';
import {banner, card, field} from './common.js';

export function contactView(app) {
  const subject = field({id: 'subject', label: 'Subject', attrs: {maxlength: '200', required: true, 'data-autofocus': ''}});
  const email = field({id: 'contact-email', label: 'Your email', type: 'email', hint: 'So we can answer you.',
    attrs: {autocomplete: 'email', required: true}});
  const message = field({id: 'message', label: 'Message', multiline: true,
    attrs: {rows: '6', maxlength: '5000', required: true}});
  const prefill = () => {
    if (app.me.authenticated && app.me.email && !email.input.value) email.input.value = app.me.email;
  };
  prefill();
  app.addEventListener('me', prefill);
  const status = h('div');
  const submit = h('button', {class: 'btn primary', type: 'submit', text: 'Send message'});
  const form = h('form', {class: 'stack', novalidate: true}, status, subject.node, email.node, message.node, submit);
  const fields = {subject, email, message};
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    Object.values(fields).forEach((f) => f.setError(''));
    const body = {subject: subject.input.value.trim(), email: email.input.value.trim(), message: message.input.value.trim()};
    const problems = [];
    if (body.subject.length < 2) problems.push([subject, 'Write a subject of at least 2 characters.']);
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(body.email)) problems.push([email, 'Enter a valid email address.']);
    if (body.message.length < 5) problems.push([message, 'Write a message of at least 5 characters.']);
    if (problems.length) {
      problems.forEach(([f, text]) => f.setError(text));
      problems[0][0].input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('/api/contact', {method: 'POST', body});
      form.replaceWith(h('div', {class: 'stack'},
        banner('Thanks — your message was sent to the people who run this box.', 'ok'),
        h('p', {}, h('a', {class: 'btn secondary', href: '/', text: 'Back to calling'}))));
      app.announce('Message sent');
    } catch (err) {
      const target = Object.entries({subject, email, message}).find(([name]) => err.message.toLowerCase().startsWith(name));
      if (target) {
        target[1].setError(err.message);
        target[1].input.focus();
      } else {
        const alert = banner(err.message, 'error');
        status.replaceChildren(alert);
        alert.focus();
      }
      submit.disabled = false;
    }
  });
  return {
    node: h('div', {class: 'page narrow'}, card(
      h('h1', {class: 'card-title', text: 'Contact'}),
      h('p', {class: 'muted', text: 'A question, a problem, an idea? Write to the people who run this OpenCall box.'}),
      form)),
    title: 'Contact',
    destroy: () => app.removeEventListener('me', prefill),
  };
}
