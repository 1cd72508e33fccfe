package chat

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := func(err error) bool { return err == nil }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"room simple", ValidateRoom("general"), true},
		{"room 64", ValidateRoom("a" + strings.Repeat("b", 63)), true},
		{"room 65", ValidateRoom("a" + strings.Repeat("b", 64)), false},
		{"room upper", ValidateRoom("General"), false},
		{"room leading dash", ValidateRoom("-x"), false},
		{"room empty", ValidateRoom(""), false},
		{"room dot", ValidateRoom("a.b"), false},
		{"id uuid", ValidateID("9f1c2a7e-0b3d-4c5e-8f9a-1b2c3d4e5f60"), true},
		{"id empty", ValidateID(""), false},
		{"id 65", ValidateID(strings.Repeat("i", 65)), false},
		{"id slash", ValidateID("a/b"), false},
		{"text one", ValidateText("x"), true},
		{"text 4000 emoji", ValidateText(strings.Repeat("😀", 4000)), true},
		{"text 4001", ValidateText(strings.Repeat("x", 4001)), false},
		{"text empty", ValidateText(""), false},
		{"text blank unicode", ValidateText("\u2003\u00a0\t\n"), false},
		{"text invalid utf8", ValidateText("a\xffb"), false},
		// v2 text rules (Hardening).
		{"text newline and tab", ValidateText("line one\n\tline two"), true},
		{"text RTL with marks", ValidateText("שלום \u200fעולם 123 مرحبا\u061c"), true},
		{"text korean japanese chinese", ValidateText("안녕하세요 こんにちは 你好"), true},
		{"text emoji zwj and skin tone", ValidateText("👩‍👩‍👧 👍🏽 ❤️"), true},
		{"text 8 combining marks", ValidateText("e" + strings.Repeat("\u0301", 8)), true},
		{"text 9 combining marks", ValidateText("e" + strings.Repeat("\u0301", 9)), false},
		{"text zalgo", ValidateText("Z\u0351\u0352\u0357\u035b\u0303\u0350\u0346\u0344\u0301\u0300a"), false},
		{"text RLO", ValidateText("photo\u202egpj.exe"), false},
		{"text LRE", ValidateText("a\u202ab"), false},
		{"text PDF", ValidateText("a\u202cb"), false},
		{"text LRI", ValidateText("a\u2066b"), false},
		{"text PDI", ValidateText("a\u2069b"), false},
		{"text NUL", ValidateText("a\x00b"), false},
		{"text ANSI escape", ValidateText("\x1b[31mred"), false},
		{"text carriage return", ValidateText("a\rb"), false},
		{"text DEL", ValidateText("a\x7fb"), false},
		{"text C1", ValidateText("a\u0085b"), false},
		{"text only hangul fillers", ValidateText("\u3164\u3164"), false},
		{"text only halfwidth filler", ValidateText("\uffa0"), false},
		{"text only zero width", ValidateText("\u200b\u200d\u2060"), false},
		{"text only combining marks", ValidateText("\u0301\u0302"), false},
		{"text only braille blank", ValidateText("\u2800 \u2800"), false},
		{"text only variation selector", ValidateText("\ufe0f"), false},
		{"text filler then letter", ValidateText("\u3164x"), true},
		{"name unicode", ValidateName("Zoë_李.x-1"), true},
		{"name 33", ValidateName(strings.Repeat("n", 33)), false},
		{"name space", ValidateName("a b"), false},
		{"name empty", ValidateName(""), false},
	}
	for _, c := range cases {
		if ok(c.err) != c.want {
			t.Errorf("%s: err %v, want ok=%v", c.name, c.err, c.want)
		}
		if c.err != nil && ErrorCode(c.err) != EBadRequest {
			t.Errorf("%s: code %s", c.name, ErrorCode(c.err))
		}
	}
	if NewID() == NewID() || ValidateID(NewID()) != nil {
		t.Error("NewID must make distinct valid ids")
	}
}
