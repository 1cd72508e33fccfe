package chat

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The persist stage's part in what users missed (see missed.go): it decides
// read commands against the room at their place in the log, stamps each
// item with Events and Mentions, and writes read positions and the mention
// index beside the batch.

// decideRead decides a read command: capped at the room's last seq (the
// items of the batch before it included), dropped when it would not move the
// user's position or the user may not read the room (the accepting instance
// refused that already, unless a removal or ban came between: a read has no
// id the client knows, so an error would tell it nothing).
func (p *Persister) decideRead(ctx context.Context, c *cachedRoom, m Message) (decided, error) {
	if m.Data == nil || m.Data.Seq < 0 || !c.st.Exists() {
		return decided{m: m, drop: true}, nil
	}
	if c.st.CanRead(m.User, itemTime(&m)) != nil {
		return decided{m: m, drop: true}, nil
	}
	at := min(m.Data.Seq, c.st.Seq)
	cur, err := p.readOf(ctx, c, m.Room, m.User)
	if err != nil {
		return decided{}, err
	}
	if at <= cur {
		return decided{m: m, drop: true}, nil
	}
	c.reads[m.User] = at
	r := Message{Room: m.Room, ID: m.ID, User: m.User, Guest: m.Guest, TS: Timestamp(time.Now()), Kind: KindRead,
		Data: &ItemData{Seq: at, Receipts: c.st.Kind == RoomDirect || len(c.st.Members) <= ReceiptsMaxMembers}}
	return decided{m: r, read: true}, nil
}

// readOf is user's read position in the cached room, read from the store the
// first time.
func (p *Persister) readOf(ctx context.Context, c *cachedRoom, room, user string) (int64, error) {
	if seq, ok := c.reads[user]; ok {
		return seq, nil
	}
	got, err := p.Marks.ReadSeqs(ctx, room, []string{user})
	if err != nil {
		return 0, err
	}
	if c.reads == nil {
		c.reads = map[string]int64{}
	}
	c.reads[user] = got[user]
	return got[user], nil
}

// stamp gives an item decided at the state's seq what the room lists
// count by: the events up to it, and for a plain message the members it
// names.
func (c *cachedRoom) stamp(m *Message) {
	m.Events = c.st.Events
	if m.Kind == "" && strings.IndexByte(m.Text, '@') >= 0 {
		m.Mentions = c.mentionsIn(m.Text, m.User)
	}
}

// mentionsIn lists the members text names with @name, matched canonically,
// each once, the author left out (naming yourself pings nobody).
func (c *cachedRoom) mentionsIn(text, author string) []string {
	var out []string
	for _, tok := range MentionTokens(text) {
		if c.canon == nil {
			c.canon = make(map[string]string, len(c.st.Members))
			for u := range c.st.Members {
				c.canon[CanonicalName(u)] = u
			}
		}
		u, ok := c.canon[CanonicalName(tok)]
		if !ok || u == author || contains(out, u) {
			continue
		}
		out = append(out, u)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// MentionTokens returns the names text writes as @name: an @ not preceded
// by a name character (so an e-mail address names nobody), then the longest
// run of name characters (letters, digits, _ - .) of at most MaxNameRunes,
// without trailing . - _ (the end of a sentence: "thanks @bob.").
func MentionTokens(text string) []string {
	var out []string
	prev := rune(' ')
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r != '@' || isNameRune(prev) {
			prev = r
			i += size
			continue
		}
		j, n := i+size, 0
		for j < len(text) && n < MaxNameRunes {
			r, size := utf8.DecodeRuneInString(text[j:])
			if !isNameRune(r) {
				break
			}
			j += size
			n++
		}
		tok := strings.TrimRight(text[i+size:j], ".-_")
		if tok != "" {
			out = append(out, tok)
		}
		prev = '@'
		i = j
	}
	return out
}

func isNameRune(r rune) bool {
	return r == '_' || r == '-' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

// marks are the read positions and mentions one batch writes.
type marks struct {
	reads    []ReadMark
	mentions []MentionMark
}

func (mk *marks) empty() bool { return len(mk.reads) == 0 && len(mk.mentions) == 0 }

// MarkingAppender is a Store that can write the marks of the items it
// stores (ItemMarks of each) in the transaction that stores them. The
// persist stage then writes one transaction per batch where Append and
// SaveMarks write two: on the embedded store each costs an fsync, which
// takes more CPU than the rest of a small batch's work. It is used only
// when the stage's Marks is that same store, so the marks land where
// SaveMarks would have put them.
type MarkingAppender interface {
	// AppendMarked is Append that also saves, as SaveMarks does (never
	// lowering a read position, a mention recorded once), the marks of
	// every message of the result, stored now or before. All or nothing,
	// and safe to retry, as Append.
	AppendMarked(ctx context.Context, msgs []Message) ([]Message, error)
}

// ItemMarks are the marks a stored item makes: its author has read up to
// it (you have read what you sent), and so have those it makes members (a
// member added at seq N sees the room from N on, and nothing before N is
// theirs to miss); each user it mentions is mentioned at its seq.
func ItemMarks(m *Message) ([]ReadMark, []MentionMark) {
	if m.Seq < 1 {
		return nil, nil
	}
	reads := []ReadMark{{Room: m.Room, User: m.User, Seq: m.Seq}}
	for _, u := range itemReaders(m) {
		reads = append(reads, ReadMark{Room: m.Room, User: u, Seq: m.Seq})
	}
	var mentions []MentionMark
	for _, u := range m.Mentions {
		mentions = append(mentions, MentionMark{User: u, Room: m.Room, Seq: m.Seq})
	}
	return reads, mentions
}

// itemReaders are the users other than its author an item makes members.
func itemReaders(m *Message) []string {
	if m.Kind != KindMember || m.Data == nil {
		return nil
	}
	switch m.Data.Action {
	case ActAdd:
		return []string{m.Data.Target}
	case ActCreate:
		return m.Data.Members
	}
	return nil
}

// batchMarks collects what the batch's decided items write: each read
// command taken, and unless the store wrote them with the items (marked),
// the marks of each stored item (ItemMarks). Read commands are capped
// again at the state's seq, which fold may have set lower than decide
// assumed. The cached read positions follow both.
func (p *Persister) batchMarks(items []decided, marked bool) marks {
	var mk marks
	at := map[ReadMark]int{} // (room, user) -> index in mk.reads
	read := func(room, user string, seq int64) {
		k := ReadMark{Room: room, User: user}
		if i, ok := at[k]; ok {
			mk.reads[i].Seq = max(mk.reads[i].Seq, seq)
			return
		}
		at[k] = len(mk.reads)
		mk.reads = append(mk.reads, ReadMark{Room: room, User: user, Seq: seq})
	}
	for i := range items {
		d := &items[i]
		c := p.rooms.rooms[d.m.Room]
		switch {
		case d.refusal != nil || d.drop || d.found:
		case d.read:
			if c != nil && d.m.Data.Seq > c.st.Seq {
				d.m.Data.Seq = c.st.Seq
			}
			read(d.m.Room, d.m.User, d.m.Data.Seq)
		case d.m.Seq > 0:
			reads, mentions := ItemMarks(&d.m)
			for _, r := range reads {
				if !marked {
					read(r.Room, r.User, r.Seq)
				}
				if c != nil {
					if c.reads == nil {
						c.reads = map[string]int64{}
					}
					c.reads[r.User] = max(c.reads[r.User], r.Seq)
				}
			}
			if !marked {
				mk.mentions = append(mk.mentions, mentions...)
			}
		}
	}
	return mk
}
