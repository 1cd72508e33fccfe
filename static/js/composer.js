// The composer: Enter sends, Shift+Enter is a new line, the box grows with
// its text.

import { t } from './i18n.js';
import { notice } from './notice.js';
import { submit } from './outbox.js';
import { ui } from './ui.js';

const MAX_TEXT = 4000; // code points

const codePoints = (s) => [...s].length;

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

export function bindComposer() {
  ui.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.input.value;
    if (!text.trim()) return;
    const n = codePoints(text);
    if (n > MAX_TEXT) {
      notice(t('composer.tooLong', { n, max: MAX_TEXT }), { kind: 'error' });
      return;
    }
    submit(text);
    ui.input.value = '';
    autosize();
    ui.input.focus();
  });
  // Enter sends, Shift+Enter is a new line; not while an IME is composing.
  ui.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.input.addEventListener('input', autosize);
}
