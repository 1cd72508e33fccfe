package chat

import "testing"

// collide are pairs that must be one name.
var collide = [][2]string{
	{"Alice", "alice"}, {"ALICE", "alice"}, {"ａｌｉｃｅ", "alice"}, {"Ａlice", "alice"},
	{"аlice", "alice"}, {"аliсе", "alice"}, {"pаypal", "paypal"}, {"раураl", "paypal"},
	{"ραypal", "paypal"}, {"οpen", "open"}, {"r00t", "root"}, {"1ucy", "lucy"}, {"ｌｕｃｙ", "lucy"},
	{"rnike", "mike"}, {"ｍｉｋｅ", "mike"}, {"ＭＩＫＥ", "mike"}, {"bi11", "bill"}, {"bоb", "bob"},
	{"𝐀𝐥𝐢𝐜𝐞", "alice"}, {"ℍugo", "hugo"}, {"ﬁona", "fiona"}, {"straße", "strasse"},
	{"ΑΒΓ", "αβγ"}, {"ИВАН", "иван"}, {"σοφιας", "σοφιασ"}, {"user０", "user0"}, {"𝟎ne", "0ne"}, {"bob¹", "bob1"},
	{"ｶﾀｶﾅ", "カタカナ"}, {"ﾔﾏﾀﾞ", "ヤマダ"},
	{"\u1112\u1161\u11ab\u1100\u1173\u11af", "한글"}, {"ㄱㄴ", "ᄀᄂ"}, {"\uffa1\uffa4", "ㄱㄴ"},
	{"\uf900", "\u8c48"}, {"⼭田", "山田"}, {"ー", "一"}, {"エ", "工"}, {"ロ", "口"}, {"カ", "力"}, {"ニ", "二"}, {"タ", "夕"},
	{"ﻣﺤﻤﺪ", "محمد"}, {"ﻋﻠﻲ", "علي"},
}

// distinct are pairs that must be two names.
var distinct = [][2]string{
	{"alice", "alicia"}, {"bob", "rob"}, {"김철수", "김철민"}, {"山田", "田山"}, {"山田", "山本"}, {"やまだ", "ヤマダ"},
	{"محمد", "محمود"}, {"иван", "иванн"}, {"user1", "user2"}, {"a0", "a8"}, {"dana", "dona"}, {"한국", "한글"},
	{"tom", "tim"}, {"東京", "京都"}, {"アイ", "アオ"}, {"علي", "عمر"}, {"nikos", "nick"}, {"ΑΛΦΑ", "ΒΗΤΑ"},
	{"kim", "kin"}, {"7", "1"}, {"ab", "ba"}, {"zoe", "joe"},
}

// TestCanonicalNameTable: pairs of names that are one name, across Latin,
// Cyrillic, Greek, Hangul, Han, Kana, Arabic and digits (case, width,
// compatibility forms, look-alike letters), and pairs that are two.
func TestCanonicalNameTable(t *testing.T) {
	for _, p := range collide {
		if CanonicalName(p[0]) != CanonicalName(p[1]) {
			t.Errorf("%q and %q must be one name: canonical %q and %q", p[0], p[1], CanonicalName(p[0]), CanonicalName(p[1]))
		}
	}
	for _, p := range distinct {
		if CanonicalName(p[0]) == CanonicalName(p[1]) {
			t.Errorf("%q and %q must be two names: both canonical %q", p[0], p[1], CanonicalName(p[0]))
		}
	}
	if len(collide) < 40 || len(distinct) < 20 {
		t.Fatalf("the table has %d colliding and %d distinct pairs; keep at least 40 and 20", len(collide), len(distinct))
	}
}
