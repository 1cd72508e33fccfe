// The dialogs of the chat page: create a room, the directory of public rooms,
// and the open room's settings. Each is a <dialog> opened modally, so focus
// stays in it and Escape closes it; every refusal of the server is shown in
// the dialog, as the server words it.

import { api, roomPath } from './api.js';
import { el } from './dom.js';
import { errorText, t } from './i18n.js';
import { goToRoom } from './nav.js';
import { loadRoom, moderates, renderHead } from './room.js';
import { refreshRooms, rememberRoom } from './rooms.js';
import { state } from './state.js';
import { ui } from './ui.js';

const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const DIRECTORY_PAGE = 50;

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

/* ---- create a room ---- */

function openCreate() {
  ui.createForm.reset();
  showError(ui.createNameError, '');
  showError(ui.createError, '');
  ui.createName.removeAttribute('aria-invalid');
  ui.createDialog.showModal();
  ui.createName.focus();
}

async function submitCreate(ev) {
  ev.preventDefault();
  const f = new FormData(ui.createForm);
  const room = String(f.get('room') || '').trim();
  const ok = ROOM_RE.test(room);
  showError(ui.createNameError, ok ? '' : room ? t('nav.invalidRoom', { name: room, rule: t('nav.roomRule') }) : t('create.enterName'));
  ui.createName.setAttribute('aria-invalid', ok ? 'false' : 'true');
  if (!ok) return ui.createName.focus();
  const body = { room, kind: f.get('kind') === 'private' ? 'private' : 'public' };
  const title = String(f.get('title') || '').trim();
  const topic = String(f.get('topic') || '').trim();
  if (title) body.title = title;
  if (topic) body.topic = topic;
  const button = ui.createForm.querySelector('[type="submit"]');
  button.disabled = true;
  showError(ui.createError, '');
  try {
    const obj = await api('POST', '/api/rooms', body);
    rememberRoom(obj);
    ui.createDialog.close();
    goToRoom(room);
    refreshRooms();
  } catch (err) {
    if (err.status === 409) {
      showError(ui.createNameError, t('create.taken', { room }));
      ui.createName.setAttribute('aria-invalid', 'true');
      ui.createName.focus();
    } else showError(ui.createError, errorText(err));
  } finally {
    button.disabled = false;
  }
}

/* ---- the directory of public rooms ---- */

let dirCursor = null;
let dirLoading = false;

async function openDirectory() {
  ui.directoryList.replaceChildren();
  dirCursor = null;
  ui.directoryMore.hidden = true;
  ui.directoryDialog.showModal();
  ui.directoryClose.focus();
  await loadDirectory();
}

async function loadDirectory() {
  if (dirLoading) return;
  dirLoading = true;
  ui.directoryMore.disabled = true;
  showError(ui.directoryStatus, t('common.loading'));
  try {
    const q = `directory=1&limit=${DIRECTORY_PAGE}${dirCursor ? `&cursor=${encodeURIComponent(dirCursor)}` : ''}`;
    const data = await api('GET', `/api/rooms?${q}`);
    dirCursor = data.next_cursor ?? null;
    ui.directoryList.append(...(data.rooms || []).map(directoryItem));
    showError(ui.directoryStatus, ui.directoryList.childElementCount ? '' : t('directory.empty'));
  } catch (err) {
    showError(ui.directoryStatus, t('directory.failed', { error: errorText(err) }));
  } finally {
    dirLoading = false;
    ui.directoryMore.disabled = false;
    ui.directoryMore.hidden = !dirCursor;
  }
}

/** directoryItem is one public room: its name, title and topic, and Join (or Open, when I am in it). */
function directoryItem(x) {
  const mine = !!x.role;
  const button = el('button', {
    type: 'button',
    class: `btn ${mine ? 'btn-ghost' : 'btn-primary'} btn-compact`,
    'data-testid': mine ? 'directory-open-room' : 'directory-join',
    text: mine ? t('directory.open') : t('directory.join'),
    'aria-label': mine ? t('directory.openRoom', { room: x.room }) : t('directory.joinRoom', { room: x.room }),
    onclick: async (ev) => {
      const b = ev.currentTarget;
      if (!mine) {
        b.disabled = true;
        try {
          await api('POST', `${roomPath(x.room)}/members`, { user: state.me });
        } catch (err) {
          b.disabled = false;
          showError(ui.directoryStatus, errorText(err));
          return;
        }
        rememberRoom({ ...x, role: 'member' });
      }
      ui.directoryDialog.close();
      goToRoom(x.room);
      refreshRooms();
    },
  });
  return el(
    'li',
    { class: 'directory-item', 'data-testid': 'directory-item', dataset: { room: x.room } },
    el(
      'div',
      { class: 'directory-text' },
      el('strong', { dir: 'auto' }, el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }), x.room),
      x.title ? el('span', { class: 'directory-title', dir: 'auto', text: x.title }) : null,
      x.topic ? el('span', { class: 'hint directory-topic', dir: 'auto', text: x.topic }) : null,
    ),
    button,
  );
}

/* ---- the open room's settings ---- */

function openSettings() {
  const r = state.room;
  if (!r?.info || !moderates(r)) return;
  ui.settingsTitle.value = r.info.title || '';
  ui.settingsTopic.value = r.info.topic || '';
  ui.settingsSlow.value = String(r.info.slow_mode_s || 0);
  showError(ui.settingsError, '');
  ui.settingsDialog.showModal();
  ui.settingsTitle.focus();
}

async function submitSettings(ev) {
  ev.preventDefault();
  const r = state.room;
  if (!r?.info) return ui.settingsDialog.close();
  // Only what changed is sent: a PATCH of one field leaves the others as
  // they are, even when someone else changed them meanwhile.
  const body = {};
  const title = ui.settingsTitle.value.trim();
  const topic = ui.settingsTopic.value.trim();
  const slow = Number(ui.settingsSlow.value || 0);
  if (!Number.isInteger(slow) || slow < 0 || slow > 3600) return showError(ui.settingsError, t('settings.badSlow'));
  if (title !== (r.info.title || '')) body.title = title;
  if (topic !== (r.info.topic || '')) body.topic = topic;
  if (slow !== (r.info.slow_mode_s || 0)) body.slow_mode_s = slow;
  if (!Object.keys(body).length) return ui.settingsDialog.close();
  const button = ui.settingsForm.querySelector('[type="submit"]');
  button.disabled = true;
  try {
    const obj = await api('PATCH', roomPath(r.name), body);
    if (r === state.room && obj) {
      r.info = { ...r.info, ...obj };
      renderHead();
    }
    ui.settingsDialog.close();
    if (r === state.room) loadRoom(r);
  } catch (err) {
    showError(ui.settingsError, errorText(err));
  } finally {
    button.disabled = false;
  }
}

export function bindDialogs() {
  ui.createOpen.addEventListener('click', openCreate);
  ui.createForm.addEventListener('submit', submitCreate);
  ui.createCancel.addEventListener('click', () => ui.createDialog.close());
  ui.createName.addEventListener('input', () => {
    showError(ui.createNameError, '');
    ui.createName.removeAttribute('aria-invalid');
  });
  ui.directoryOpen.addEventListener('click', openDirectory);
  ui.directoryMore.addEventListener('click', loadDirectory);
  ui.directoryClose.addEventListener('click', () => ui.directoryDialog.close());
  ui.settingsOpen.addEventListener('click', openSettings);
  ui.settingsForm.addEventListener('submit', submitSettings);
  ui.settingsCancel.addEventListener('click', () => ui.settingsDialog.close());
  // A click on the backdrop (outside the dialog's box) closes it, as Escape does.
  for (const d of [ui.createDialog, ui.directoryDialog, ui.settingsDialog]) {
    d.addEventListener('click', (ev) => {
      if (ev.target !== d) return;
      const b = d.getBoundingClientRect();
      const inside = ev.clientX >= b.left && ev.clientX <= b.right && ev.clientY >= b.top && ev.clientY <= b.bottom;
      if (!inside) d.close();
    });
  }
}
