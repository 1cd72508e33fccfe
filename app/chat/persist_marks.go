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

// batchMarks collects what the batch's decided items write: each read
// command taken, each stored item's author's read position (you have read
// what you sent) and that of the members it adds, each mention. Read commands are capped again at the
// state's seq, which fold may have set lower than decide assumed.
func (p *Persister) batchMarks(items []decided) marks {
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
			// The author has read up to it; so have those it makes
			// members: a member added at seq N sees the room from N on,
			// and nothing before N is theirs to miss.
			readers := []string{d.m.User}
			if d.m.Kind == KindMember && d.m.Data != nil {
				switch d.m.Data.Action {
				case ActAdd:
					readers = append(readers, d.m.Data.Target)
				case ActCreate:
					readers = append(readers, d.m.Data.Members...)
				}
			}
			for _, u := range readers {
				read(d.m.Room, u, d.m.Seq)
				if c != nil {
					if c.reads == nil {
						c.reads = map[string]int64{}
					}
					c.reads[u] = max(c.reads[u], d.m.Seq)
				}
			}
			for _, u := range d.m.Mentions {
				mk.mentions = append(mk.mentions, MentionMark{User: u, Room: d.m.Room, Seq: d.m.Seq})
			}
		}
	}
	return mk
}
