package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parley-chat/parley/app/tools/client"
)

// storedMsg is one document of the store's messages collection, read
// straight from the database rather than through the server.
type storedMsg struct {
	Room string `bson:"room"`
	Seq  int64  `bson:"seq"`
	ID   string `bson:"id"`
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
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "room", Value: 1}, {Key: "seq", Value: 1}, {Key: "id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	var out []storedMsg
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	return out, nil
}

// lastSeqs returns each room's highest stored seq, from one pass over the
// collection (FerretDB's SQLite backend answers a sorted FindOne by
// scanning the room, and has no $max in $group): the settle loop must not
// load the store it waits for.
func lastSeqs(ctx context.Context, uri, db string, rooms []string) (map[string]int64, error) {
	msgs, err := readStore(ctx, uri, db)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, r := range rooms {
		out[r] = 0
	}
	for _, m := range msgs {
		out[m.Room] = max(out[m.Room], m.Seq)
	}
	return out, nil
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

	// Outages counts lost connections; KillRecoveries the recovery times of
	// those lost to a kill or SIGTERM of their instance.
	Outages        int
	slowest        []client.Outage
	KillRecoveries []time.Duration
	LongestOutage  time.Duration
	Unrecovered    int

	problems []string
}

// Lost is every loss: acknowledged messages not stored and deliveries missed.
func (r *Report) Lost() int { return r.LostAcked + r.MissedDeliveries }

// Pass reports whether nothing was lost, doubled or reordered.
func (r *Report) Pass() bool {
	return r.Lost() == 0 && r.StoreDuplicates == 0 && r.OutOfOrder == 0 && r.Unknown == 0 && len(r.StoreSeqProblems) == 0
}

func verdict(o Options, recs []client.Record, clientRooms [][]string, stored []storedMsg, events []event, start time.Time) *Report {
	rep := &Report{Scenario: o.Scenario, Events: events, start: start}
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

	// The clients' sends against the store.
	sent := map[string]bool{}
	for _, rec := range recs {
		for _, s := range rec.Sent {
			key := s.Room + "/" + s.ID
			sent[key] = true
			rep.Sent++
			rep.Retries += max(s.Attempts-1, 0)
			switch {
			case s.Acked && count[key] == 0:
				rep.LostAcked++
				rep.problems = append(rep.problems, "acknowledged but not stored: "+key)
			case s.Acked:
				rep.Acked++
			case count[key] > 0:
				rep.UnackedStored++
			}
		}
	}
	for key := range count {
		if !sent[key] {
			rep.Unknown++
			rep.problems = append(rep.problems, "stored but sent by no client: "+key)
		}
	}
	if s := len(rep.problems); s > 20 {
		rep.problems = rep.problems[:20]
	}

	// Each client, each room: every stored seq after its start, once, in
	// order, with the stored id.
	for i, rec := range recs {
		for _, room := range clientRooms[i] {
			rr := rec.Rooms[room]
			last := int64(len(bySeq[room]))
			rep.ClientDuplicates += rr.Duplicates
			rep.Gaps += rr.Gaps
			rep.GapsFilled += rr.GapsFilled
			rep.Delivered += len(rr.Delivered)
			got := map[int64]bool{}
			prev := rr.Start
			for _, d := range rr.Delivered {
				if d.Seq != prev+1 || bySeq[room][d.Seq] != d.ID {
					rep.OutOfOrder++
					if len(rep.problems) < 40 {
						rep.problems = append(rep.problems, fmt.Sprintf("client %d in %s: seq %d (id %s, stored %s) after %d", i, room, d.Seq, d.ID, bySeq[room][d.Seq], prev))
					}
				}
				got[d.Seq] = true
				prev = d.Seq
			}
			missed := 0
			for s := rr.Start + 1; s <= last; s++ {
				if !got[s] {
					missed++
				}
			}
			if missed > 0 && len(rep.problems) < 40 {
				rep.problems = append(rep.problems, fmt.Sprintf("client %d in %s: %d of seqs %d..%d not delivered (delivered up to %d)", i, room, missed, rr.Start+1, last, rr.Last()))
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
			}
		}
	}
	slices.Sort(rep.KillRecoveries)
	slices.SortStableFunc(rep.Events, func(a, b event) int { return a.At.Compare(b.At) })
	slices.SortFunc(rep.slowest, func(a, b client.Outage) int { return cmp.Compare(b.Recovered, a.Recovered) })
	rep.slowest = rep.slowest[:min(len(rep.slowest), 3)]
	return rep
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
	rec := "none"
	if n := len(r.KillRecoveries); n > 0 {
		rec = fmt.Sprintf("longest %v (p50 %v, p99 %v over %d reconnects)", r.KillRecoveries[n-1].Round(time.Millisecond),
			r.KillRecoveries[n/2].Round(time.Millisecond), r.KillRecoveries[min(n-1, n*99/100)].Round(time.Millisecond), n)
	}
	fmt.Fprintf(w, "recovery after a kill or SIGTERM of the client's instance: %s; %d connections lost in all, longest recovery %v, %d not recovered\n",
		rec, r.Outages, r.LongestOutage.Round(time.Millisecond), r.Unrecovered)
	for _, o := range r.slowest {
		fmt.Fprintf(w, "  slow recovery: %v from +%.1fs (%s, lost to %s), %d attempts, last failure: %s\n",
			o.Recovered.Round(time.Millisecond), o.At.Sub(r.start).Seconds(), o.Instance, o.Cause, o.Attempts, o.LastErr)
	}
	var longest time.Duration
	if n := len(r.KillRecoveries); n > 0 {
		longest = r.KillRecoveries[n-1]
	}
	verdict := "PASS"
	if !r.Pass() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "verdict: %s %s: sent=%d acked=%d stored=%d delivered=%d lost=%d duplicated=%d out_of_order=%d recovery_max=%v\n",
		verdict, r.Scenario, r.Sent, r.Acked, r.Stored, r.Delivered, r.Lost(), r.StoreDuplicates, r.OutOfOrder, longest.Round(time.Millisecond))
}
