// The open room's people: the member list (with roles, guests and mutes),
// the bans (for an owner or moderator), adding someone by name, and the menu
// of one person — a member in the list or a message's author — with a
// direct message and whatever moderation my role allows on them.

import { api, roomPath } from './api.js';
import { el } from './dom.js';
import { errorText, lang, t } from './i18n.js';
import { goToRoom } from './nav.js';
import { notice } from './notice.js';
import { actionsOn, loadRoom, mayAdd, moderates, mutedUntil, onMembersChanged, putOut, rank, renderHead } from './room.js';
import { refreshRooms, rememberRoom } from './rooms.js';
import { state } from './state.js';
import { ui } from './ui.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u; // the contract's user name, checked again by the server

const untilFmt = new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'short' });

/** The ISO time `ms` from now: a ban's or mute's until (RFC 3339, UTC). */
const fromNow = (ms) => new Date(Date.now() + ms).toISOString();

/** roleText is a role as the page says it ('' for a plain member). */
function roleText(role) {
  if (role === 'owner') return t('role.owner');
  if (role === 'moderator') return t('role.moderator');
  return '';
}

/** nameButton is a person's name that opens their menu. */
const nameButton = (user, extra = {}) =>
  el('button', {
    type: 'button',
    class: 'member-name',
    dir: 'auto',
    'aria-haspopup': 'menu',
    text: user,
    onclick: (ev) => openPersonMenu(user, ev.currentTarget),
    ...extra,
  });

/** renderMembers redraws the member list and the bans of the open room, owners first, then moderators. */
export function renderMembers() {
  const r = state.room;
  const members = r?.members ? [...r.members.values()] : [];
  members.sort((a, b) => rank(b.role) - rank(a.role) || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  ui.memberList.replaceChildren(
    ...members.map((m) => {
      const muted = mutedUntil(r, m.user);
      return el(
        'li',
        { class: 'member', 'data-testid': 'member', dataset: { user: m.user, role: m.role || '' } },
        el('span', { class: 'avatar small', 'aria-hidden': 'true', text: ([...m.user][0] || '?').toUpperCase() }),
        el(
          'div',
          { class: 'member-main' },
          el(
            'div',
            { class: 'member-line' },
            nameButton(m.user, { 'data-testid': 'member-name' }),
            m.user === state.me ? el('span', { class: 'member-you', text: t('members.you') }) : null,
          ),
          el(
            'div',
            { class: 'member-tags' },
            m.role && m.role !== 'member' ? el('span', { class: `role-badge role-${m.role}`, 'data-testid': 'member-role', text: roleText(m.role) }) : null,
            m.guest ? el('span', { class: 'guest-mark', text: t('message.guest') }) : null,
            muted
              ? el('span', { class: 'muted-mark', 'data-testid': 'member-muted', title: t('members.mutedUntil', { until: untilFmt.format(muted) }), text: t('members.muted') })
              : null,
          ),
        ),
      );
    }),
  );
  const bans = r?.bans || [];
  ui.bans.hidden = !moderates(r) || bans.length === 0;
  ui.banList.replaceChildren(
    ...bans.map((b) =>
      el(
        'li',
        { class: 'member', 'data-testid': 'ban', dataset: { user: b.user } },
        el('span', { class: 'member-name', dir: 'auto', text: b.user }),
        el('span', { class: 'hint', text: b.until ? t('bans.until', { until: untilFmt.format(new Date(b.until)) }) : t('bans.forGood') }),
        el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'unban', text: t('bans.unban'), onclick: () => act('unban', b.user) }),
      ),
    ),
  );
  ui.addMemberForm.hidden = !mayAdd(r);
  renderHead();
}

onMembersChanged(renderMembers);

/* ---- the panel ---- */

function setPanel(open) {
  ui.membersPanel.hidden = !open;
  ui.membersToggle.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('members-open', open);
  if (open) renderMembers();
}

async function addMember(ev) {
  ev.preventDefault();
  const r = state.room;
  const user = ui.addMemberInput.value.trim();
  const showError = (text) => {
    ui.addMemberError.textContent = text;
    ui.addMemberError.hidden = !text;
    ui.addMemberInput.setAttribute('aria-invalid', text ? 'true' : 'false');
  };
  if (!NAME_RE.test(user)) return showError(user ? t('members.badName', { name: user }) : t('members.enterName'));
  showError('');
  const button = ui.addMemberForm.querySelector('button');
  button.disabled = true;
  try {
    await api('POST', `${roomPath(r.name)}/members`, { user });
    ui.addMemberInput.value = '';
    if (r === state.room) await loadRoom(r);
  } catch (err) {
    showError(errorText(err));
  } finally {
    button.disabled = false;
  }
}

export function bindMembers() {
  ui.membersToggle.addEventListener('click', () => setPanel(ui.membersPanel.hidden));
  ui.membersClose.addEventListener('click', () => {
    setPanel(false);
    ui.membersToggle.focus();
  });
  // Escape closes the panel (on narrow screens it lies over the conversation).
  ui.membersPanel.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape' || ev.defaultPrevented) return;
    setPanel(false);
    ui.membersToggle.focus();
  });
  ui.addMemberForm.addEventListener('submit', addMember);
  ui.addMemberInput.addEventListener('input', () => {
    ui.addMemberError.hidden = true;
    ui.addMemberInput.removeAttribute('aria-invalid');
  });
  ui.personMenu.addEventListener('keydown', menuKeys);
  ui.personMenu.addEventListener('toggle', (ev) => {
    // Closed by Escape or a click elsewhere: focus goes back to the name it came from.
    const lost = !document.activeElement || document.activeElement === document.body;
    if (ev.newState === 'closed' && lost && menuInvoker?.isConnected) menuInvoker.focus();
  });
}

/* ---- one person's menu ---- */

let menuInvoker = null;

const labels = {
  dm: (user) => t('person.dm', { user }),
  leave: () => t('person.leave'),
  promote: () => t('person.promote'),
  demote: () => t('person.demote'),
  remove: () => t('person.remove'),
  mute1h: () => t('person.mute1h'),
  mute1d: () => t('person.mute1d'),
  unmute: () => t('person.unmute'),
  ban1h: () => t('person.ban1h'),
  ban1d: () => t('person.ban1d'),
  banForever: () => t('person.banForever'),
};

/** openPersonMenu opens the menu of `user` by the element `from` (their name). */
export function openPersonMenu(user, from) {
  const r = state.room;
  if (!r) return;
  const actions = actionsOn(r, user);
  menuInvoker = from;
  ui.personMenuName.textContent = user;
  ui.personMenu.dataset.user = user;
  ui.personMenuItems.replaceChildren(
    ...actions.map((a) =>
      el('button', {
        type: 'button',
        role: 'menuitem',
        class: `menu-item${/^(remove|ban|leave)/.test(a) ? ' danger' : ''}`,
        'data-testid': `person-${a}`,
        tabindex: '-1',
        text: labels[a](user),
        onclick: () => {
          ui.personMenu.hidePopover();
          menuInvoker?.focus();
          act(a, user);
        },
      }),
    ),
  );
  if (!actions.length) ui.personMenuItems.append(el('p', { class: 'hint', text: t('person.nothing') }));
  if (ui.personMenu.matches(':popover-open')) ui.personMenu.hidePopover();
  ui.personMenu.showPopover();
  place(ui.personMenu, from);
  ui.personMenuItems.querySelector('button')?.focus();
}

/** place puts the popover under (or, near the bottom, above) the element it belongs to, inside the window. */
export function place(menu, anchor) {
  const a = anchor.getBoundingClientRect();
  const m = menu.getBoundingClientRect();
  const left = Math.max(8, Math.min(a.left, window.innerWidth - m.width - 8));
  const below = a.bottom + 4;
  const top = below + m.height > window.innerHeight - 8 ? Math.max(8, a.top - m.height - 4) : below;
  menu.style.setProperty('left', `${left}px`);
  menu.style.setProperty('top', `${top}px`);
}

/** menuKeys: the arrow keys, Home and End move between the menu's items (Escape closes it: popover). */
function menuKeys(ev) {
  const items = [...ui.personMenuItems.querySelectorAll('button')];
  if (!items.length) return;
  const i = items.indexOf(document.activeElement);
  let next = null;
  if (ev.key === 'ArrowDown') next = items[(i + 1) % items.length];
  else if (ev.key === 'ArrowUp') next = items[(i - 1 + items.length) % items.length];
  else if (ev.key === 'Home') next = items[0];
  else if (ev.key === 'End') next = items.at(-1);
  else if (ev.key === 'Tab') ui.personMenu.hidePopover();
  if (next) {
    ev.preventDefault();
    next.focus();
  }
}

/**
 * act does one action of the menu (or of the bans list) on user in the open
 * room. The server decides; its refusal is shown as it words it. The room is
 * read again at once, and once more when the change's timeline item arrives.
 */
export async function act(action, user) {
  const r = state.room;
  if (!r) return;
  const base = roomPath(r.name);
  const who = encodeURIComponent(user);
  try {
    switch (action) {
      case 'dm': {
        const room = await api('POST', '/api/dms', { user });
        rememberRoom(room);
        goToRoom(room.room);
        return;
      }
      case 'leave':
        await api('DELETE', `${base}/members/${who}`);
        // The server ends my subscription with a "left" frame too; either
        // way the room goes from the sidebar and the pane says I left.
        putOut(r.name, 'left');
        refreshRooms();
        return;
      case 'promote':
      case 'demote':
        await api('PUT', `${base}/members/${who}`, { role: action === 'promote' ? 'moderator' : 'member' });
        break;
      case 'remove':
        await api('DELETE', `${base}/members/${who}`);
        break;
      case 'mute1h':
      case 'mute1d':
        await api('POST', `${base}/mutes`, { user, until: fromNow(action === 'mute1h' ? HOUR : DAY) });
        break;
      case 'unmute':
        await api('DELETE', `${base}/mutes/${who}`);
        break;
      case 'ban1h':
      case 'ban1d':
        await api('POST', `${base}/bans`, { user, until: fromNow(action === 'ban1h' ? HOUR : DAY) });
        break;
      case 'banForever':
        await api('POST', `${base}/bans`, { user });
        break;
      case 'unban':
        await api('DELETE', `${base}/bans/${who}`);
        break;
      default:
        return;
    }
    if (r === state.room) loadRoom(r);
  } catch (err) {
    notice(errorText(err), { kind: 'error' });
  }
}
