import {h} from '../dom.js';
import {card} from './common.js';

export function notFoundView() {
  return {
    node: h('div', {class: 'page narrow'}, card(
      h('h1', {class: 'card-title', text: 'Page not found'}),
      h('p', {class: 'muted', text: 'There is nothing at this address.'}),
      h('p', {}, h('a', {class: 'btn secondary', href: '/', text: 'Go to OpenCall'})),
    )),
    title: 'Not found',
  };
}
