package chat_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-chat/parley/app/chat"
)

// An error keeps the format it was made from as its key and each argument
// as the message shows it, so that a client's translation puts the same
// text in the same place.
func TestErrorfKeepsKeyAndParams(t *testing.T) {
	for _, c := range []struct {
		format string
		args   []any
		params []string
	}{
		{"no such room", nil, nil},
		{"text must be at most %d characters", []any{4000}, []string{"4000"}},
		{"name %q is reserved", []any{"admin"}, []string{`"admin"`}},
		{"text must not contain control characters other than newline and tab (U+%04X)", []any{rune(0x1b)}, []string{"001B"}},
		{"too many messages: at most %g per second", []any{2.5}, []string{"2.5"}},
		{"no such API route: %s %s", []any{"GET", "/api/x"}, []string{"GET", "/api/x"}},
		{"100%% sure: %s", []any{"yes"}, []string{"yes"}},
	} {
		e := chat.Errorf(chat.EBadRequest, c.format, c.args...)
		if e.Key != c.format || !slices.Equal(e.Params, c.params) || e.Message != fmt.Sprintf(c.format, c.args...) {
			t.Errorf("Errorf(%q, %v) = key %q params %q message %q, want key %q params %q", c.format, c.args, e.Key, e.Params, e.Message, c.format, c.params)
		}
		if key, params := chat.ErrorKey(fmt.Errorf("wrapped: %w", e)); key != e.Key || !slices.Equal(params, e.Params) {
			t.Errorf("ErrorKey of a wrapped %q = %q %q", c.format, key, params)
		}
	}
	if key, params := chat.ErrorKey(fmt.Errorf("driver: broken")); key != chat.KeyInternal || params != nil {
		t.Errorf("ErrorKey of a plain error = %q %q, want %q", key, params, chat.KeyInternal)
	}
}

func TestFormatVerbs(t *testing.T) {
	for format, want := range map[string][]string{
		"plain":                           nil,
		"%s: %s":                          {"%s", "%s"},
		"U+%04X and %q, %d%%, %.2f, %-5v": {"%04X", "%q", "%d", "%.2f", "%-5v"},
		"trailing %":                      nil,
	} {
		if got := chat.FormatVerbs(format); !slices.Equal(got, want) {
			t.Errorf("FormatVerbs(%q) = %q, want %q", format, got, want)
		}
	}
}
