// The chat page's elements, found once by data-testid (the names the browser
// test uses too).

import { $, byTestId } from './dom.js';

export const ui = {};

/** bindUI fills `ui` from the rendered page (web/index.templ). */
export function bindUI() {
  Object.assign(ui, {
    conn: byTestId('conn-state'),
    connText: $('.conn-text'),
    signout: byTestId('signout-button'),
    userGuest: byTestId('user-guest'),
    roomsToggle: byTestId('rooms-toggle'),
    scrim: byTestId('scrim'),
    roomForm: byTestId('room-form'),
    roomInput: byTestId('room-input'),
    roomError: byTestId('room-error'),
    roomList: byTestId('room-list'),
    roomsMore: byTestId('rooms-more'),
    roomName: $('.room-title .room-name'),
    pane: byTestId('message-pane'),
    loadOlder: byTestId('load-older'),
    paneStatus: byTestId('pane-status'),
    list: byTestId('message-list'),
    empty: byTestId('empty'),
    historyStart: byTestId('history-start'),
    startRoom: $('.history-start .start-room'),
    composer: byTestId('composer'),
    input: byTestId('message-input'),
    notice: byTestId('notice'),
  });
}
