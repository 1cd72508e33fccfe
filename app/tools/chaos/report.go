package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/chat"
	"github.com/parley-chat/parley/app/tools/client"
)

// storedMsg is one document of the store's messages collection, read
// straight from the database rather than through the server.
type storedMsg struct {
	Room string `bson:"room"`
	Seq  int64  `bson:"seq"`
	ID   string `bson:"id"`
	User string `bson:"user"`
	// Kind and Data are a timeline item's ("member" and its data as JSON).
	Kind string        `bson:"kind"`
	Data string        `bson:"data"`
	TS   bson.RawValue `bson:"ts"`
	// Text, ReplyTo and Deleted are what the folded views are checked
	// against (a deleted message's text is erased in the store).
	Text    string `bson:"text"`
	ReplyTo int64  `bson:"reply_to"`
	Deleted bool   `bson:"deleted"`

	data itemData       // Data decoded, of a member item
	life *chat.ItemData // Data decoded, of a lifecycle item ("target" a seq)
	at   time.Time      // TS read
}

// itemData is what the verdict reads of a member item's data.
type itemData struct {
	Action string `json:"action"`
	Target string `json:"target"`
	// Kind is a create's room kind.
	Kind string `json:"kind"`
}

// decode fills data and at from the document's fields.
func (m *storedMsg) decode() {
	if m.Data != "" && isLifecycle(m.Kind) {
		m.life = new(chat.ItemData)
		if json.Unmarshal([]byte(m.Data), m.life) != nil {
			m.life = nil // not folded: the view check reports the difference
		}
	} else if m.Data != "" {
		_ = json.Unmarshal([]byte(m.Data), &m.data)
	}
	if ms, ok := m.TS.DateTimeOK(); ok {
		m.at = time.UnixMilli(ms)
	} else if s, ok := m.TS.StringValueOK(); ok {
		m.at, _ = time.Parse(time.RFC3339Nano, s)
	}
}

func connectStore(uri string) (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
}

// readStore reads every message document of the run's database.
func readStore(ctx context.Context, uri, db string) ([]storedMsg, error) {
	cl, err := connectStore(uri)
	if err != nil {
		return nil, err
	}
	defer cl.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cur, err := cl.Database(db).Collection("messages").Find(ctx, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}, {Key: "id", Value: 1},
			{Key: "user", Value: 1}, {Key: "kind", Value: 1}, {Key: "data", Value: 1}, {Key: "ts", Value: 1},
			{Key: "text", Value: 1}, {Key: "reply_to", Value: 1}, {Key: "deleted", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	var out []storedMsg
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	for i := range out {
		out[i].decode()
	}
	return out, nil
}

// lastSeqs returns each room's highest stored seq, and the membership the
// store's timeline tells, from one pass over the collection (FerretDB's
// SQLite backend answers a sorted FindOne by scanning the room, and has no
// $max in $group): the settle loop must not load the store it waits for.
func lastSeqs(ctx context.Context, uri, db string, rooms []string) (map[string]int64, timeline, error) {
	msgs, err := readStore(ctx, uri, db)
	if err != nil {
		return nil, timeline{}, err
	}
	out := map[string]int64{}
	for _, r := range rooms {
		out[r] = 0
	}
	for _, m := range msgs {
		out[m.Room] = max(out[m.Room], m.Seq)
	}
	return out, membership(msgs), nil
}

// Report is the outcome of a run.
type Report struct {
	Scenario string
	Events   []event
	start    time.Time

	Sent, Acked, Stored int
	// UnackedStored counts messages stored whose send was never acknowledged
	// (allowed, once).
	UnackedStored int
	// Unknown counts stored messages no client sent.
	Unknown int
	// StoreDuplicates counts extra documents of one (room, id);
	// StoreSeqProblems rooms whose seqs are not exactly 1..n.
	StoreDuplicates  int
	StoreSeqProblems []string

	// LostAcked counts acknowledged messages not in the store;
	// MissedDeliveries (client, seq) pairs a client should have delivered
	// and did not.
	LostAcked, MissedDeliveries int
	// Delivered counts messages delivered over every client (after dedupe).
	Delivered int
	// OutOfOrder counts deliveries not exactly one seq after the previous
	// one, or with another id than the store holds for the seq.
	OutOfOrder int
	// ClientDuplicates are frames the clients dropped as repeats; Gaps the
	// seq jumps they saw live and GapsFilled those closed from the history.
	ClientDuplicates, Gaps, GapsFilled int
	// Retries counts send frames beyond the first, per id.
	Retries int

	// Membership. PrivateRooms are the rooms created private; MemberItems
	// the moderator's items in the store; Removals, Bans and Readds its
	// changes, ModRetried those it had to try again (ModResolved of them
	// found applied in the store after a 409/404 or a timeout), ModErrors
	// those not decided within 90 s (the cluster was down for them: a
	// figure, not a failure; ModExtended changes were waited for longer,
	// up to maxChangeWait, while the persist stage was behind);
	// ModRestored the members the last pass
	// brought back, Unrestored those it could not (a failure: the run
	// must end with every client a member).
	PrivateRooms, MemberItems int
	Removals, Bans, Readds    int64
	ModRetried, ModResolved   int64
	ModExtended               int64
	ModErrors                 int
	ModRestored               int64
	Unrestored                int
	// Refusals of the clients' sends: told before the ack, told after it,
	// and acknowledged, not stored, its sender out of the room then though
	// no refusal reached it.
	RefusedBeforeAck, RefusedAfterAck, RefusedUntold int
	// Exits counts the clients' ends of membership, Resumes their rejoins
	// at their add; CutShort the stretches of membership a client did not
	// see to the end because it was away at its removal (CutShortItems
	// items in all).
	Exits, Resumes, CutShort, CutShortItems int
	// AfterRemoval counts items a client got while no member (check 1);
	// StoredOutside stored messages of a user while no member (check 2).
	AfterRemoval, StoredOutside int

	// A message's life. Edits, Deletes, Reactions and Replies are the
	// stored items of each kind (replies: messages with reply_to). Views
	// counts the clients' folded views of a room compared with the store's
	// (ViewMessages messages in all), ViewMismatches the messages whose
	// folded form differed (or views of another length).
	Edits, Deletes, Reactions, Replies  int
	Views, ViewMessages, ViewMismatches int

	// Outages counts lost connections; KillRecoveries the recovery times of
	// those lost to a kill or SIGTERM of their instance, killOutages those
	// outages (recovery.go).
	Outages        int
	slowest        []client.Outage
	KillRecoveries []time.Duration
	killOutages    []client.Outage
	LongestOutage  time.Duration
	Unrecovered    int
	// ClearRecoveries are the KillRecoveries of outages that overlapped no
	// stop of the store or Kafka (stopWindows): during one, by the
	// contract, no instance is ready, so no client can be back before it
	// ends.
	ClearRecoveries []time.Duration

	problems []string
}

// Lost is every loss: acknowledged messages not stored and deliveries missed.
func (r *Report) Lost() int { return r.LostAcked + r.MissedDeliveries }

// Pass reports whether nothing was lost, doubled or reordered, nobody saw
// or wrote a room while no member, every membership change was made, and
// every client's folded view is the store's.
func (r *Report) Pass() bool {
	return r.Lost() == 0 && r.StoreDuplicates == 0 && r.OutOfOrder == 0 && r.Unknown == 0 && len(r.StoreSeqProblems) == 0 &&
		r.AfterRemoval == 0 && r.StoredOutside == 0 && r.Unrestored == 0 && r.ViewMismatches == 0
}

// problem keeps p among the first 40 problems.
func (r *Report) problem(p string) {
	if len(r.problems) < 40 {
		r.problems = append(r.problems, p)
	}
}

// modStats is what the moderator did, for the report.
type modStats struct {
	Removals, Bans, Readds, Retried, Resolved, Restored, Extended int64
	Errors, Unrestored                                            []string
}

func verdict(o Options, recs []client.Record, clientRooms [][]string, names []string, stored []storedMsg, mod modStats, events []event, start time.Time) *Report {
	rep := &Report{Scenario: o.Scenario, Events: events, start: start}
	rep.Removals, rep.Bans, rep.Readds, rep.ModRetried, rep.ModResolved = mod.Removals, mod.Bans, mod.Readds, mod.Retried, mod.Resolved
	rep.ModExtended = mod.Extended
	rep.ModErrors, rep.ModRestored, rep.Unrestored = len(mod.Errors), mod.Restored, len(mod.Unrestored)
	for _, e := range mod.Unrestored[:min(len(mod.Unrestored), 10)] {
		rep.problems = append(rep.problems, "not a member again at the end: "+e)
	}
	// The store, per room: seq -> id, and (room, id) counts.
	bySeq := map[string]map[int64]string{}
	count := map[string]int{} // room + "/" + id
	for _, m := range stored {
		if bySeq[m.Room] == nil {
			bySeq[m.Room] = map[int64]string{}
		}
		if prev, ok := bySeq[m.Room][m.Seq]; ok {
			rep.StoreSeqProblems = append(rep.StoreSeqProblems, fmt.Sprintf("%s seq %d held twice (%s, %s)", m.Room, m.Seq, prev, m.ID))
		}
		bySeq[m.Room][m.Seq] = m.ID
		count[m.Room+"/"+m.ID]++
	}
	for room, seqs := range bySeq {
		for s := int64(1); s <= int64(len(seqs)); s++ {
			if _, ok := seqs[s]; !ok {
				rep.StoreSeqProblems = append(rep.StoreSeqProblems, fmt.Sprintf("%s: seqs not 1..%d (seq %d missing)", room, len(seqs), s))
				break
			}
		}
	}
	for _, n := range count {
		rep.Stored++
		rep.StoreDuplicates += n - 1
	}
	tl := membership(stored)
	rep.PrivateRooms = len(tl.private)
	// Messages a stored delete is about (room + "/" + seq): an edit,
	// delete or reaction about one may have been refused (conflict) after
	// its ack without the client being told.
	deletedTarget := map[string]bool{}
	for _, m := range stored {
		if m.Kind == chat.KindDelete && m.life != nil {
			deletedTarget[fmt.Sprintf("%s/%d", m.Room, m.life.TargetSeq)] = true
		}
	}

	// The clients' sends against the store. A send refused (before its ack
	// or after it) is no loss; neither is an acknowledged one the store
	// lacks whose sender was out of the room at the time, as the timeline
	// says, though no refusal reached it (it was away when it came), nor an
	// edit, delete or reaction whose target the store holds deleted.
	sent := map[string]bool{}
	for i, rec := range recs {
		for _, s := range rec.Sent {
			key := s.Room + "/" + s.ID
			sent[key] = true
			rep.Sent++
			rep.Retries += max(s.Attempts-1, 0)
			switch {
			case s.Refused != "" && s.RefusedAfterAck:
				rep.RefusedAfterAck++
			case s.Refused != "":
				rep.RefusedBeforeAck++
			case s.Acked && count[key] == 0 && (tl.outAround(s.Room, names[i], s.First, s.AckedAt) ||
				s.Kind != "" && deletedTarget[fmt.Sprintf("%s/%d", s.Room, s.Target)]):
				rep.RefusedUntold++
			case s.Acked && count[key] == 0:
				rep.LostAcked++
				rep.problems = append(rep.problems, fmt.Sprintf("acknowledged but not stored: %s (kind %q, target %d, first sent %s, acked %s, attempts %d)",
					key, s.Kind, s.Target, s.First.Sub(start).Round(time.Millisecond), s.AckedAt.Sub(start).Round(time.Millisecond), s.Attempts))
			case s.Acked:
				rep.Acked++
			case count[key] > 0:
				rep.UnackedStored++
			}
		}
	}
	for _, m := range stored {
		key := m.Room + "/" + m.ID
		switch {
		case m.Kind == "member" && m.User == modName:
			rep.MemberItems++
		case m.Kind != "" && !isLifecycle(m.Kind) || !sent[key]:
			rep.Unknown++
			rep.problems = append(rep.problems, fmt.Sprintf("stored but sent by no client: %s (kind %q, user %s)", key, m.Kind, m.User))
		case tl.private[m.Room] && !inside(tl.of(m.Room, m.User), m.Seq):
			// (2) no stored message of a user outside their membership.
			rep.StoredOutside++
			rep.problems = append(rep.problems, fmt.Sprintf("stored at seq %d of %s while %s was no member: %s", m.Seq, m.Room, m.User, m.ID))
		}
	}
	if s := len(rep.problems); s > 20 {
		rep.problems = rep.problems[:20]
	}

	// Each client, each room: (1) nothing outside its membership; (3) every
	// stored seq of each stretch of membership after its start, once, in
	// order, with the stored id. A stretch that ended in a removal may end
	// early for a client that was away when it came (no left frame: a
	// removed member may not read the room, not even what it missed): counted,
	// not lost.
	for i, rec := range recs {
		for _, room := range clientRooms[i] {
			rr := rec.Rooms[room]
			ivs := tl.of(room, names[i])
			last := int64(len(bySeq[room]))
			rep.ClientDuplicates += rr.Duplicates
			rep.Gaps += rr.Gaps
			rep.GapsFilled += rr.GapsFilled
			rep.Delivered += len(rr.Delivered)
			rep.Resumes += rr.Resumes
			rep.Exits += len(rr.Exits)
			if rr.AfterLeft > 0 {
				rep.AfterRemoval += rr.AfterLeft
				rep.problem(fmt.Sprintf("client %d in %s: %d message frames after its left frame", i, room, rr.AfterLeft))
			}
			got := map[int64]bool{}
			prev := rr.Start
			for _, d := range rr.Delivered {
				if d.Seq <= prev || bySeq[room][d.Seq] != d.ID {
					rep.OutOfOrder++
					rep.problem(fmt.Sprintf("client %d in %s: seq %d (id %s, stored %s) after %d", i, room, d.Seq, d.ID, bySeq[room][d.Seq], prev))
				}
				if !inside(ivs, d.Seq) {
					rep.AfterRemoval++
					rep.problem(fmt.Sprintf("client %d (%s) in %s: got seq %d while no member (membership %v)", i, names[i], room, d.Seq, ivs))
				}
				got[d.Seq] = true
				prev = max(prev, d.Seq)
			}
			framed := map[int64]bool{} // last seqs delivered when a left frame came
			for _, e := range rr.Exits {
				if e.Frame {
					framed[e.Seq] = true
				}
			}
			missed := 0
			for _, iv := range ivs {
				lo, hi := max(iv.From, rr.Start+1), min(iv.To, last)
				if lo > hi {
					continue
				}
				t := lo - 1
				for t < hi && got[t+1] {
					t++
				}
				later := false
				for s := t + 1; s <= hi; s++ {
					later = later || got[s]
				}
				if t < hi && iv.To != open && !later && !framed[t] {
					rep.CutShort++
					rep.CutShortItems += int(hi - t)
					continue
				}
				for s := lo; s <= hi; s++ {
					if !got[s] {
						missed++
					}
				}
			}
			if missed > 0 {
				rep.problem(fmt.Sprintf("client %d in %s: %d of its seqs %d..%d not delivered (delivered up to %d, membership %v)", i, room, missed, rr.Start+1, last, rr.Last(), ivs))
			}
			rep.MissedDeliveries += missed
		}
		for _, out := range rec.Outages {
			rep.Outages++
			if out.Recovered == 0 {
				rep.Unrecovered++
				continue
			}
			rep.LongestOutage = max(rep.LongestOutage, out.Recovered)
			rep.slowest = append(rep.slowest, out)
			if killedAt(events, out) {
				rep.KillRecoveries = append(rep.KillRecoveries, out.Recovered)
				rep.killOutages = append(rep.killOutages, out)
			}
		}
	}
	stops := stopWindows(events)
	for _, out := range rep.killOutages {
		if !overlapsStop(stops, out) {
			rep.ClearRecoveries = append(rep.ClearRecoveries, out.Recovered)
		}
	}
	checkViews(rep, recs, clientRooms, stored)
	slices.Sort(rep.KillRecoveries)
	slices.Sort(rep.ClearRecoveries)
	slices.SortStableFunc(rep.Events, func(a, b event) int { return a.At.Compare(b.At) })
	slices.SortFunc(rep.slowest, func(a, b client.Outage) int { return cmp.Compare(b.Recovered, a.Recovered) })
	rep.slowest = rep.slowest[:min(len(rep.slowest), 3)]
	return rep
}

// A window is a span of the run during which a shared service was stopped;
// a zero to: not resumed before the run ended.
type window struct{ from, to time.Time }

// stopWindows are the stops of the Kafka broker and of the store, from
// their stop event to their resume event.
// Instances answer /readyz again a little after a resume: recoveries in
// that tail count as clear, which only makes the clear figures worse.
func stopWindows(events []event) []window {
	var ws []window
	for i, e := range events {
		var resumed string
		switch {
		case e.What == evKafkaStop:
			resumed = evKafkaResumed
		case strings.HasPrefix(e.What, evStoreStop):
			resumed = evStoreResumed
		default:
			continue
		}
		w := window{from: e.At}
		for _, r := range events[i+1:] {
			if strings.HasPrefix(r.What, resumed) {
				w.to = r.At
				break
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// overlapsStop reports whether out, from its loss to its recovery, met a
// stop window.
func overlapsStop(ws []window, out client.Outage) bool {
	end := out.At.Add(out.Recovered)
	for _, w := range ws {
		if (w.to.IsZero() || out.At.Before(w.to)) && end.After(w.from) {
			return true
		}
	}
	return false
}

// killedAt reports whether out began within 5 s after its instance was
// killed or told to stop.
func killedAt(events []event, out client.Outage) bool {
	for _, e := range events {
		if e.Node != "" && e.Node == out.Instance && !out.At.Before(e.At.Add(-100*time.Millisecond)) && out.At.Sub(e.At) < 5*time.Second {
			return true
		}
	}
	return false
}

// Print writes the figures, the verdict line last.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nfaults (%s):\n", r.Scenario)
	for _, e := range r.Events {
		fmt.Fprintf(w, "  +%6.1fs  %s\n", e.At.Sub(r.start).Seconds(), e.What)
	}
	for _, p := range r.problems {
		fmt.Fprintln(w, "  problem:", p)
	}
	for _, p := range r.StoreSeqProblems {
		fmt.Fprintln(w, "  store:", p)
	}
	fmt.Fprintf(w, "sent %d, acked %d, stored %d (unacked but stored %d, stored by no client %d)\n",
		r.Sent, r.Acked, r.Stored, r.UnackedStored, r.Unknown)
	fmt.Fprintf(w, "delivered %d (duplicates dropped by clients %d, live seq gaps %d, filled from history %d), send retries %d\n",
		r.Delivered, r.ClientDuplicates, r.Gaps, r.GapsFilled, r.Retries)
	fmt.Fprintf(w, "lost %d (acked but not stored %d, deliveries missed %d), duplicated in the store %d, out of order %d\n",
		r.Lost(), r.LostAcked, r.MissedDeliveries, r.StoreDuplicates, r.OutOfOrder)
	fmt.Fprintf(w, "membership: %d private rooms, %d member items; %d removals, %d bans, %d re-adds (%d retried, %d of them resolved from the store, %d waited for past 90s while the persist stage was behind, %d not decided); %d restored at the end, %d not\n",
		r.PrivateRooms, r.MemberItems, r.Removals, r.Bans, r.Readds, r.ModRetried, r.ModResolved, r.ModExtended, r.ModErrors, r.ModRestored, r.Unrestored)
	fmt.Fprintf(w, "  sends refused %d (before the ack %d, after it %d, not told but out of the room %d); clients left %d times, rejoined at their add %d times, %d stretches cut short by a removal while away (%d items)\n",
		r.RefusedBeforeAck+r.RefusedAfterAck+r.RefusedUntold, r.RefusedBeforeAck, r.RefusedAfterAck, r.RefusedUntold, r.Exits, r.Resumes, r.CutShort, r.CutShortItems)
	fmt.Fprintf(w, "  items delivered while no member %d, messages stored while no member %d\n", r.AfterRemoval, r.StoredOutside)
	fmt.Fprintf(w, "lifecycle: stored %d edits, %d deletes, %d reactions, %d replies; %d folded views compared with the store's (%d messages), %d messages differ\n",
		r.Edits, r.Deletes, r.Reactions, r.Replies, r.Views, r.ViewMessages, r.ViewMismatches)
	rec := "none"
	if n := len(r.KillRecoveries); n > 0 {
		rec = fmt.Sprintf("longest %v (p50 %v, p99 %v over %d reconnects)", r.KillRecoveries[n-1].Round(time.Millisecond),
			r.KillRecoveries[n/2].Round(time.Millisecond), r.KillRecoveries[min(n-1, n*99/100)].Round(time.Millisecond), n)
	}
	fmt.Fprintf(w, "recovery after a kill or SIGTERM of the client's instance: %s; %d connections lost in all, longest recovery %v, %d not recovered\n",
		rec, r.Outages, r.LongestOutage.Round(time.Millisecond), r.Unrecovered)
	if n := len(r.KillRecoveries); n > 0 {
		fmt.Fprintf(w, "  of which clear of a stop of the store or Kafka: %d of %d, p50/p99/max %s (the rest overlapped one)\n",
			len(r.ClearRecoveries), n, quantiles(r.ClearRecoveries))
	}
	printRecoverySteps(w, r.killOutages)
	for _, o := range r.slowest {
		fmt.Fprintf(w, "  slow recovery: %v from +%.1fs (%s, lost to %s), %d attempts, last failure: %s\n    %s\n",
			o.Recovered.Round(time.Millisecond), o.At.Sub(r.start).Seconds(), o.Instance, o.Cause, o.Attempts, o.LastErr, slowDetail(o))
	}
	var longest time.Duration
	if n := len(r.KillRecoveries); n > 0 {
		longest = r.KillRecoveries[n-1]
	}
	verdict := "PASS"
	if !r.Pass() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "verdict: %s %s: sent=%d acked=%d stored=%d delivered=%d lost=%d duplicated=%d out_of_order=%d recovery_max=%v items=%d removals=%d refused=%d after_removal=%d stored_outside=%d lifecycle=%d views_differ=%d\n",
		verdict, r.Scenario, r.Sent, r.Acked, r.Stored, r.Delivered, r.Lost(), r.StoreDuplicates, r.OutOfOrder, longest.Round(time.Millisecond),
		r.MemberItems, r.Removals+r.Bans, r.RefusedBeforeAck+r.RefusedAfterAck+r.RefusedUntold, r.AfterRemoval, r.StoredOutside,
		r.Edits+r.Deletes+r.Reactions, r.ViewMismatches)
}

// open is the To of a stretch of membership not ended.
const open = math.MaxInt64

// interval is a stretch of membership: from the item that made the user a
// member (create or add) at From to the one that ended it (remove, ban,
// leave) at To, both included (the target is sent its removal); To is open
// while it lasts. FromAt and ToAt are those items' ts.
type interval struct {
	From, To     int64
	FromAt, ToAt time.Time
}

func (iv interval) String() string {
	if iv.To == open {
		return fmt.Sprintf("[%d..]", iv.From)
	}
	return fmt.Sprintf("[%d..%d]", iv.From, iv.To)
}

// timeline is the membership the store's member items tell.
type timeline struct {
	private map[string]bool
	members map[string]map[string][]interval // room -> user -> in seq order
}

// membership folds the member items of the store, room by room in seq
// order, into stretches of membership of the private rooms.
func membership(stored []storedMsg) timeline {
	items := slices.Clone(stored)
	slices.SortFunc(items, func(a, b storedMsg) int { return cmp.Or(cmp.Compare(a.Room, b.Room), cmp.Compare(a.Seq, b.Seq)) })
	tl := timeline{private: map[string]bool{}, members: map[string]map[string][]interval{}}
	for _, m := range items {
		if m.Kind != "member" {
			continue
		}
		users := tl.members[m.Room]
		if users == nil {
			users = map[string][]interval{}
			tl.members[m.Room] = users
		}
		openAt := func(user string) {
			ivs := users[user]
			if n := len(ivs); n == 0 || ivs[n-1].To != open {
				users[user] = append(ivs, interval{From: m.Seq, To: open, FromAt: m.at})
			}
		}
		switch m.data.Action {
		case "create":
			if m.data.Kind == "private" {
				tl.private[m.Room] = true
			}
			openAt(m.User)
		case "add":
			openAt(m.data.Target)
		case "remove", "ban", "leave":
			ivs := users[m.data.Target]
			if n := len(ivs); n > 0 && ivs[n-1].To == open {
				ivs[n-1].To, ivs[n-1].ToAt = m.Seq, m.at
			}
		}
	}
	return tl
}

// of is user's membership of room: every seq of a room that is not private.
func (tl timeline) of(room, user string) []interval {
	if !tl.private[room] {
		return []interval{{From: 1, To: open}}
	}
	return tl.members[room][user]
}

func inside(ivs []interval, seq int64) bool {
	for _, iv := range ivs {
		if iv.From <= seq && seq <= iv.To {
			return true
		}
	}
	return false
}

// outAround reports whether a message user sent to room from first, acked
// at acked, may have been refused by the persist stage: its place in the log
// may lie after a removal of user and before the next add. The removal's
// publish followed its ts, and the message's preceded its ack; the add's
// publish followed its ts by at most the REST publish bound.
func (tl timeline) outAround(room, user string, first, acked time.Time) bool {
	if !tl.private[room] {
		return false
	}
	const publishBound = 15 * time.Second
	ivs := tl.members[room][user]
	for k, iv := range ivs {
		if iv.To == open || iv.ToAt.After(acked) {
			continue
		}
		if k+1 == len(ivs) || !ivs[k+1].FromAt.Add(publishBound).Before(first) {
			return true
		}
	}
	return false
}
