package chat

import (
	"strings"
	"testing"
)

func TestCanonicalNameFoldsLookAlikes(t *testing.T) {
	alice := CanonicalName("alice")
	for _, n := range []string{"Alice", "ALICE", "аlice" /* Cyrillic а */, "ａｌｉｃｅ" /* fullwidth */, "AlIce"} {
		if got := CanonicalName(n); got != alice {
			t.Errorf("CanonicalName(%q) = %q, want %q (alice's)", n, got, alice)
		}
	}
	for _, n := range []string{"bob", "alicia", "alice2", "김철수"} {
		if CanonicalName(n) == alice {
			t.Errorf("CanonicalName(%q) must differ from alice's", n)
		}
	}
	if CanonicalName("김철수") != CanonicalName("김철수") || CanonicalName("山田") == CanonicalName("田山") {
		t.Error("canonical names of CJK names must be stable and distinct")
	}
}

func TestValidateNameV2(t *testing.T) {
	ok := []string{
		"alice", "Zoë_李.x-1", "user_42", "O", "김철수", "山田太郎", "やまだ", "ヤマダ",
		"李小龙", "محمد", "مريم_2", "Иван", "Γιώργος", "Taro山田", "やまだ太郎", "한글漢字", "bob-한국",
		"José", "ŁukaszŻ", "x",
	}
	for _, n := range ok {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want ok", n, err)
		}
	}
	refused := map[string]string{
		"\u3164":                    "invisible",  // Hangul filler alone
		"a\u3164b":                  "invisible",  // filler inside
		"\u115Fx":                   "invisible",  // Hangul choseong filler
		"\uFFA0":                    "invisible",  // halfwidth Hangul filler
		"a\u200Bb":                  "only",       // zero width space: not a letter
		"аlice":                     "mix",        // Cyrillic а with Latin
		"pαypal":                    "mix",        // Greek α with Latin
		"한글ひら":                      "mix",        // Hangul with Hiragana
		"bopoㄅ한":                    "mix",        // Bopomofo with Hangul
		"___":                       "letter",     // punctuation only
		"...":                       "letter",     //
		"-._":                       "letter",     //
		"admin":                     "reserved",   //
		"Admin":                     "reserved",   // case
		"ａｄｍｉｎ":                     "reserved",   // fullwidth
		"adrnin":                    "reserved",   // rn looks like m
		"ADMINISTRATOR":             "reserved",   //
		"here":                      "reserved",   //
		"everyone":                  "reserved",   //
		"Parley":                    "reserved",   //
		"r00t":                      "reserved",   // 0 looks like o
		"":                          "characters", //
		strings.Repeat("n", 33):     "characters", //
		"a b":                       "only",       //
		"\xff":                      "UTF-8",      //
		"al\u0301\u0301\u0301ice@x": "only",       //
	}
	for n, want := range refused {
		err := ValidateName(n)
		if err == nil {
			t.Errorf("ValidateName(%q) accepted, want refused (%s)", n, want)
			continue
		}
		if ErrorCode(err) != EBadRequest || !strings.Contains(ErrorMessage(err), want) {
			t.Errorf("ValidateName(%q) = %s %q, want bad_request mentioning %q", n, ErrorCode(err), ErrorMessage(err), want)
		}
	}
}
