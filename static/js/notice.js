// The notice bar: one message at a time, hidden after a while unless sticky.

import { el } from './dom.js';
import { t } from './i18n.js';
import { ui } from './ui.js';

const NOTICE_MS = 6_000;

let noticeTimer = 0;

export function notice(text, { kind = 'info', sticky = false, action = null } = {}) {
  clearTimeout(noticeTimer);
  ui.notice.replaceChildren(el('span', { class: 'notice-text', text }));
  if (action) ui.notice.append(el('button', { type: 'button', class: 'btn btn-small', text: action.label, onclick: action.run }));
  ui.notice.append(el('button', { type: 'button', class: 'notice-close', 'aria-label': t('notice.dismiss'), text: '×', onclick: hideNotice }));
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = false;
  if (!sticky) noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

function hideNotice() {
  ui.notice.hidden = true;
}
