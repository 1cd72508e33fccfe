// A message's life on the page (PROTOCOL.md v2, "Message lifecycle"):
// replies (the composer quotes the parent; a reply shows a quote of it that
// jumps to it), edits in place, deletes after a confirmation, reactions
// (a picker, and chips with counts and who reacted, mine to toggle).
//
// Edits, deletes and reactions are items of the timeline of their own; they
// are not shown as lines but folded into the message they are about, by the
// client library's Timeline (the rule of the server's chat.Message.Fold), in
// every tab as they arrive; history comes folded already, so a reload and a
// resume show the same. Nothing is changed on the page before the server
// has it: the item coming back is what changes the message.
//
// The server decides every change; what is offered mirrors its rules
// (app/chat/lifecycle.go, CheckLifecycle): edit my own messages, delete mine
// or, as a moderator or owner of a room that is not direct, anyone's.

import { $, el } from './dom.js';
import { loadOlder } from './history.js';
import { errorText, lang, t } from './i18n.js';
import { place } from './members.js';
import { notice } from './notice.js';
import { showTarget } from './reading.js';
import { state } from './state.js';
import { conn } from './transport.js';
import { ui } from './ui.js';

// The picker's emoji: a few common ones (the server takes any one emoji).
const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];
// A change is acknowledged and retried as a send is (outbox.js).
const CHANGE = { ackTimeout: 8_000, attempts: 3, budget: 30_000 };
const QUOTE_MAX = 140; // code points of a parent's text quoted
const JUMP_PAGES = 20; // older pages read at most to reach a reply's parent

const fullFmt = new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'medium' });

/** isMessage: m is a message of someone (not an event or a lifecycle item). */
const isMessage = (m) => !m.kind;

const shorten = (s) => {
  const cps = [...s];
  return cps.length > QUOTE_MAX ? `${cps.slice(0, QUOTE_MAX).join('')}…` : s;
};

/**
 * decorate fills the parts of message node li that its life changes, from
 * m as it stands: the quote of its parent, its text (or "message deleted"),
 * "(edited)", its reactions and what I may do to it. It is called again
 * whenever m changes; an editor open on it stays (unless m was deleted).
 */
export function decorate(r, li, m) {
  if (!li || !isMessage(m)) return;
  const body = $('.msg-body', li);
  const text = $('.msg-text', li);
  if (!body || !text) return;
  // The quote of the parent, above the text.
  $('.msg-quote', li)?.remove();
  if (Number.isInteger(m.reply_to) && m.reply_to > 0) text.before(quoteNode(r, m.reply_to));
  li.dataset.deleted = m.deleted ? 'true' : 'false';
  li.classList.toggle('deleted', !!m.deleted);
  text.textContent = m.deleted ? t('message.deleted') : m.text;
  text.classList.toggle('msg-deleted', !!m.deleted);
  if (m.deleted) closeEditor(li);
  // "(edited)" under the text (a continued message has no header to hold it).
  $('.msg-edited', li)?.remove();
  if (m.edited_ts && !m.deleted) {
    const mark = el('span', { class: 'msg-edited', 'data-testid': 'message-edited', text: t('message.edited') });
    mark.title = t('message.editedAt', { time: fullFmt.format(new Date(m.edited_ts)) });
    ($('.msg-editor', li) || text).after(mark);
  }
  $('.msg-reactions', li)?.remove();
  const chips = reactionsNode(r, m);
  if (chips) body.insertBefore(chips, $('.msg-status', li) || $('.msg-seen', li));
  $('.msg-actions', li)?.remove();
  if (m.seq && !m.deleted) li.append(actionsNode(r, m));
}

/** refreshMessage redraws the message at seq of the open room r (it changed) and the quotes of it. */
export function refreshMessage(r, seq) {
  const m = r.timeline.get(seq);
  const li = r.nodes.get(seq);
  if (m && li) decorate(r, li, m);
  refreshQuotes(r, seq);
}

/** refreshQuotes redraws the quotes of the item at seq (it changed, or was loaded). */
export function refreshQuotes(r, seq) {
  for (const q of ui.list.querySelectorAll(`.msg-quote[data-reply-to="${seq}"]`)) q.replaceWith(quoteNode(r, seq));
}

/** quoteNode is the quote of the parent at seq: its author and (the start of) its text; a click jumps to it. */
function quoteNode(r, seq) {
  const p = r.timeline.get(seq);
  const what = !p ? t('message.replyUnknown') : p.deleted ? t('message.deleted') : shorten(p.text || '');
  return el(
    'button',
    {
      type: 'button',
      class: `msg-quote${p?.deleted ? ' quote-deleted' : ''}`,
      'data-testid': 'message-quote',
      'aria-label': p ? t('message.replyJump', { user: p.user }) : t('message.replyUnknown'),
      dataset: { replyTo: String(seq) },
      onclick: (ev) => {
        ev.stopPropagation();
        jumpTo(seq);
      },
    },
    p ? el('span', { class: 'quote-user', dir: 'auto', text: p.user }) : null,
    el('span', { class: 'quote-text', dir: 'auto', text: what }),
  );
}

/**
 * jumpTo scrolls to the item at seq of the open room and marks it, reading
 * older pages until it is shown (a reply's parent far up).
 */
export async function jumpTo(seq) {
  const r = state.room;
  if (!r) return;
  for (let i = 0; i < JUMP_PAGES && !r.nodes.has(seq) && r === state.room && r.hasMore; i++) {
    if (!(await loadOlder())) break;
  }
  if (r !== state.room || showTarget(r, seq)) return;
  notice(t('message.replyGone'));
}

/** reactionsNode is m's reaction chips (null: none): each emoji with its count, who reacted as the title, mine pressed. */
function reactionsNode(r, m) {
  const entries = Object.entries(m.reactions || {}).filter(([, users]) => users.length);
  if (!entries.length) return null;
  return el(
    'div',
    { class: 'msg-reactions', 'data-testid': 'reactions' },
    ...entries.map(([emoji, users]) => {
      const mine = users.includes(state.me);
      return el(
        'button',
        {
          type: 'button',
          class: `reaction${mine ? ' mine' : ''}`,
          'data-testid': 'reaction',
          'aria-pressed': mine ? 'true' : 'false',
          title: t('reactions.who', { emoji, users: users.join(', ') }),
          dataset: { emoji, users: users.join('\n') },
          onclick: () => change(r, 'react', m.seq, [emoji, !mine]).catch(() => {}), // said by change
        },
        el('span', { class: 'reaction-emoji', text: emoji }),
        el('span', { class: 'reaction-count', 'data-testid': 'reaction-count', text: String(users.length) }),
      );
    }),
  );
}

/**
 * actionsNode is what I may do to m: reply, react, and on my own messages
 * edit; delete on mine, and on others' where I moderate (the list's class
 * "moderating", set as the room's object says my role, shows those).
 */
function actionsNode(r, m) {
  const mine = m.user === state.me;
  const button = (act, label, text, onclick, extra = '') =>
    el('button', { type: 'button', class: `msg-act${extra}`, 'data-testid': `message-${act}`, 'aria-label': label, title: label, text, onclick });
  return el(
    'div',
    { class: 'msg-actions', role: 'group', 'aria-label': t('message.actions') },
    button('reply', t('message.reply'), '↩', () => startReply(r, m.seq)),
    button('react', t('message.react'), '☺', (ev) => openPicker(r, m.seq, ev.currentTarget)),
    mine ? button('edit', t('message.edit'), '✎', () => startEdit(r, m.seq)) : null,
    button('delete', t('message.delete'), '×', () => confirmDelete(r, m.seq), mine ? '' : ' mod-only'),
  );
}

/** change sends an edit, delete or reaction; a refusal is said (the message stays as it was). */
function change(r, op, seq, arg) {
  return conn.change(op, r.name, seq, arg, CHANGE).catch((err) => {
    if (r === state.room) notice(t('message.changeFailed', { error: errorText(err) }), { kind: 'error' });
    throw err;
  });
}

/* ---- reply ---- */

/** startReply makes the composer's next message a reply to seq of the open room. */
export function startReply(r, seq) {
  if (r !== state.room || !r.timeline.get(seq)) return;
  r.replyTo = seq;
  renderReplyBar();
  ui.input.focus();
}

/** replyTarget is the seq the composer's message answers in the open room, or 0. */
export const replyTarget = () => state.room?.replyTo || 0;

export function clearReply() {
  if (state.room) state.room.replyTo = null;
  renderReplyBar();
}

/** renderReplyBar shows, above the composer, the message the next one answers (or nothing). */
export function renderReplyBar() {
  const r = state.room;
  const seq = r?.replyTo;
  const p = seq && r.timeline.get(seq);
  ui.replyBar.hidden = !p;
  if (!p) {
    ui.replyText.replaceChildren();
    return;
  }
  ui.replyText.replaceChildren(
    t('composer.replyingTo'),
    ' ',
    el('strong', { class: 'quote-user', dir: 'auto', text: p.user }),
    ' ',
    el('span', { class: 'quote-text', dir: 'auto', text: p.deleted ? t('message.deleted') : shorten(p.text || '') }),
  );
}

/* ---- edit in place ---- */

function startEdit(r, seq) {
  const li = r.nodes.get(seq);
  const m = r.timeline.get(seq);
  if (!li || !m || m.deleted || m.user !== state.me || $('.msg-editor', li)) return;
  const text = $('.msg-text', li);
  const input = el('textarea', { class: 'msg-edit-input', 'data-testid': 'edit-input', rows: '2', dir: 'auto', 'aria-label': t('message.editLabel') });
  input.value = m.text;
  const save = el('button', { type: 'submit', class: 'btn btn-primary btn-small', 'data-testid': 'edit-save', text: t('common.save') });
  const cancel = el('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'edit-cancel', text: t('common.cancel'), onclick: () => closeEditor(li) });
  const form = el('form', { class: 'msg-editor', 'data-testid': 'editor', novalidate: true }, input, el('div', { class: 'msg-editor-buttons' }, cancel, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const now = r.timeline.get(seq);
    const next = input.value;
    if (!now || now.deleted || !next.trim() || next === now.text) return closeEditor(li);
    input.disabled = save.disabled = true;
    try {
      await change(r, 'edit', seq, next);
      closeEditor(li);
    } catch {
      input.disabled = save.disabled = false;
      input.focus();
    }
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      closeEditor(li);
    } else if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  text.hidden = true;
  text.after(form);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function closeEditor(li) {
  const form = $('.msg-editor', li);
  if (!form) return;
  const hadFocus = form.contains(document.activeElement);
  form.remove();
  const text = $('.msg-text', li);
  if (text) text.hidden = false;
  if (hadFocus) ui.input.focus();
}

/* ---- delete ---- */

let deleting = null; // {r, seq} the dialog asks about

function confirmDelete(r, seq) {
  const m = r.timeline.get(seq);
  if (!m || m.deleted) return;
  deleting = { r, seq };
  ui.deleteText.textContent = shorten(m.text || '');
  ui.deleteError.hidden = true;
  ui.deleteDialog.showModal();
  ui.deleteCancel.focus();
}

async function submitDelete(ev) {
  ev.preventDefault();
  const d = deleting;
  if (!d) return ui.deleteDialog.close();
  ui.deleteConfirm.disabled = true;
  try {
    await conn.change('delete', d.r.name, d.seq, null, CHANGE);
    deleting = null;
    ui.deleteDialog.close();
  } catch (err) {
    ui.deleteError.textContent = errorText(err);
    ui.deleteError.hidden = false;
  } finally {
    ui.deleteConfirm.disabled = false;
  }
}

/* ---- the reaction picker ---- */

let picking = null; // {r, seq, from}

function openPicker(r, seq, from) {
  picking = { r, seq, from };
  const mine = r.timeline.get(seq)?.reactions || {};
  for (const b of ui.reactPicker.querySelectorAll('button')) b.setAttribute('aria-pressed', String(!!mine[b.dataset.emoji]?.includes(state.me)));
  if (ui.reactPicker.matches(':popover-open')) ui.reactPicker.hidePopover();
  ui.reactPicker.showPopover();
  place(ui.reactPicker, from);
  ui.reactPicker.querySelector('button')?.focus();
}

function pick(emoji) {
  const p = picking;
  ui.reactPicker.hidePopover();
  if (!p || p.r !== state.room) return;
  if (p.from?.isConnected) p.from.focus();
  const m = p.r.timeline.get(p.seq);
  if (!m || m.deleted) return;
  change(p.r, 'react', p.seq, [emoji, !m.reactions?.[emoji]?.includes(state.me)]).catch(() => {});
}

/** bindLifecycle wires the reply bar, the delete dialog and the reaction picker (web/index.templ). */
export function bindLifecycle() {
  ui.replyCancel.addEventListener('click', () => {
    clearReply();
    ui.input.focus();
  });
  ui.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && replyTarget()) {
      ev.preventDefault();
      clearReply();
    }
  });
  ui.deleteForm.addEventListener('submit', submitDelete);
  ui.deleteCancel.addEventListener('click', () => ui.deleteDialog.close());
  ui.reactPicker.replaceChildren(
    ...EMOJI.map((emoji) =>
      el('button', { type: 'button', class: 'react-choice', 'data-testid': 'react-choice', 'aria-label': t('reactions.pick', { emoji }), dataset: { emoji }, text: emoji, onclick: () => pick(emoji) }),
    ),
  );
  ui.reactPicker.addEventListener('keydown', (ev) => {
    const items = [...ui.reactPicker.querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[ev.key];
    if (step) {
      ev.preventDefault();
      items[(i + step + items.length) % items.length]?.focus();
    }
  });
}
