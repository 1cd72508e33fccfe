package chat

// UnreadBetween is the Unread of Marks.Counts, from two stored items of one
// room: first, the first stored item after the read position, and last, the
// last stored item at or before the room's LastSeq (nil when there is none).
// Both stores read the two items their own way and count with this, so
// that they count alike.
//
// first stands in for the read position: the items before it are read or
// gone, and the events before it number its Events, less one if it is an
// event itself. So an item deleted by retention is never counted, read or
// not: a badge must not promise what history cannot show. Items stored
// before Events existed carry 0; the result is kept within [0, the items
// counted], whatever such a mix adds up to.
func UnreadBetween(first, last *Message) int64 {
	if first == nil || last == nil || first.Seq > last.Seq {
		return 0
	}
	base, baseEvents := first.Seq-1, first.Events
	if first.Kind != "" {
		baseEvents--
	}
	items := last.Seq - base
	return min(max(items-(last.Events-baseEvents), 0), items)
}
