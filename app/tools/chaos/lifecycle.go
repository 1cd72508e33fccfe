package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// A message's life under chaos (PROTOCOL.md v2 "Message lifecycle"): the
// clients also edit and delete their own messages, react to recent ones and
// reply, through the kills, and the verdict checks that each client's
// folded view of each room is what the store's items fold to.

// Shares of a client's turns: the rest are sends, a tenth of them replies.
const (
	editShare   = 0.10
	deleteShare = 0.05
	reactShare  = 0.20
	replyShare  = 0.10
	// recentN is how far back a client looks for a message to act on.
	recentN = 30
)

var emojis = []string{"👍", "🎉", "😂", "🚀"}

// act is client i's n-th turn in room, as user: an edit or a delete of one
// of its own recent messages, a reaction (or taking one back) to a recent
// message, or a send, chosen from its folded view. A turn whose pick finds
// nothing to act on sends instead. deleted holds the seqs the client
// deleted in room (its view may not show them yet); the ids share one
// space, "c<i>-<n>", as the server's idempotency key spans every kind.
func act(ctx context.Context, cl *client.Client, i, n int, user, room string, deleted map[int64]bool) {
	id := fmt.Sprintf("c%d-%d", i, n)
	view := cl.Messages(room)
	var live, own []client.Message
	for _, m := range view[max(0, len(view)-recentN):] {
		if m.Deleted || deleted[m.Seq] {
			continue
		}
		live = append(live, m)
		if m.User == user {
			own = append(own, m)
		}
	}
	pick := func(ms []client.Message) client.Message { return ms[mrand.IntN(len(ms))] }
	switch r := mrand.Float64(); {
	case r < editShare && len(own) > 0:
		m := pick(own)
		_ = cl.Edit(ctx, room, id, m.Seq, fmt.Sprintf("message %d of client %d, edited at turn %d", m.Seq, i, n))
	case r < editShare+deleteShare && len(own) > 0:
		m := pick(own)
		deleted[m.Seq] = true
		_ = cl.Delete(ctx, room, id, m.Seq)
	case r < editShare+deleteShare+reactShare && len(live) > 0:
		m := pick(live)
		e := emojis[mrand.IntN(len(emojis))]
		_ = cl.React(ctx, room, id, m.Seq, e, !slices.Contains(m.Reactions[e], user))
	case r < editShare+deleteShare+reactShare+replyShare && len(live) > 0:
		_ = cl.SendReply(ctx, room, id, fmt.Sprintf("message %d of client %d", n, i), pick(live).Seq)
	default:
		_ = cl.Send(ctx, room, id, fmt.Sprintf("message %d of client %d", n, i))
	}
}

func isLifecycle(kind string) bool {
	return kind == chat.KindEdit || kind == chat.KindDelete || kind == chat.KindReaction
}

// chatMessage is the stored item as the domain's Message, for chat.FoldInto.
func (m *storedMsg) chatMessage() chat.Message {
	return chat.Message{Room: m.Room, Seq: m.Seq, ID: m.ID, User: m.User, Text: m.Text, TS: chat.Timestamp(m.at),
		Kind: m.Kind, Data: m.life, ReplyTo: m.ReplyTo, Deleted: m.Deleted}
}

// checkViews compares every client's folded view of each of its rooms with
// the store's: the stored messages it delivered, folded by chat.FoldInto
// with the stored lifecycle items it delivered. Only what it delivered: a
// member of a private room misses, while no member, the items of that time,
// rightly, and whether it delivered all it should is the delivery check's
// (MissedDeliveries). A message the store holds deleted, by an item the
// client did not deliver, is compared by its seq and reply_to alone: the
// store erased its text, and the client may have got it before the delete
// (as it was) or after (deleted, from the store), both rightly.
func checkViews(rep *Report, recs []client.Record, clientRooms [][]string, stored []storedMsg) {
	type at struct {
		room string
		seq  int64
	}
	bySeq := map[at]*storedMsg{}
	deletedAt := map[at]bool{} // a delete item about it is stored
	for k := range stored {
		m := &stored[k]
		bySeq[at{m.Room, m.Seq}] = m
		switch {
		case m.Kind == "" && m.ReplyTo != 0:
			rep.Replies++
		case m.Kind == chat.KindEdit:
			rep.Edits++
		case m.Kind == chat.KindDelete:
			rep.Deletes++
		case m.Kind == chat.KindReaction:
			rep.Reactions++
		}
		if m.Kind == chat.KindDelete && m.life != nil {
			deletedAt[at{m.Room, m.life.TargetSeq}] = true
		}
	}
	for i, rec := range recs {
		for _, room := range clientRooms[i] {
			rr := rec.Rooms[room]
			var page, items []chat.Message
			delivDeleted := map[int64]bool{} // targets of the deletes it delivered
			for _, d := range rr.Delivered {
				m := bySeq[at{room, d.Seq}]
				switch {
				case m == nil || m.ID != d.ID:
					// Not the stored item: out of order, counted there.
				case m.Kind == "":
					page = append(page, m.chatMessage())
				case isLifecycle(m.Kind) && m.life != nil:
					items = append(items, m.chatMessage())
					if m.Kind == chat.KindDelete {
						delivDeleted[m.life.TargetSeq] = true
					}
				}
			}
			chat.FoldInto(page, items)
			rep.Views++
			rep.ViewMessages += len(page)
			got := rr.Messages
			if len(got) != len(page) {
				rep.ViewMismatches++
				rep.problem(fmt.Sprintf("client %d in %s: %d messages in its folded view, %d delivered and stored", i, room, len(got), len(page)))
				continue
			}
			for k, w := range page {
				g := got[k]
				known := !deletedAt[at{room, w.Seq}] || delivDeleted[w.Seq]
				if g.Seq != w.Seq || g.ReplyTo != w.ReplyTo || known && (g.Deleted != w.Deleted || g.Text != w.Text ||
					g.EditedTS != w.EditedTS || !sameReactions(g.Reactions, w.Reactions)) {
					rep.ViewMismatches++
					rep.problem(fmt.Sprintf("client %d in %s, seq %d: folded %q edited %q deleted %v reply_to %d reactions %v; the store's %q edited %q deleted %v reply_to %d reactions %v",
						i, room, g.Seq, g.Text, g.EditedTS, g.Deleted, g.ReplyTo, g.Reactions, w.Text, w.EditedTS, w.Deleted, w.ReplyTo, w.Reactions))
				}
			}
		}
	}
}

// sameReactions compares two reactions maps, users in order; none and an
// empty map are the same.
func sameReactions(a, b map[string][]string) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return reflect.DeepEqual(a, b)
}
