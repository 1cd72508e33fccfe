package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parley-chat/parley/app/tools/localcluster"
)

// TestNotifyHolderKilled: the instance holding the parley-notify partition
// of a direct room is killed (kill -9) while notifications are pending in
// it. Every due notification still appears exactly once in the target's
// list, and webhooks repeat only under the same delivery id.
func TestNotifyHolderKilled(t *testing.T) {
	brokers, mongo := needCluster(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := localcluster.Build(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t, 1)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	secret := testSecret("notify-" + suffix)
	env := []string{
		"PARLEY_TOPIC_SEND=send_" + suffix, "PARLEY_TOPIC_RECEIVE=receive_" + suffix,
		"PARLEY_NOTIFY_DELAY=2s", "PARLEY_WEBHOOK_URLS=" + hook.srv.URL + "/hook", "PARLEY_WEBHOOK_SECRET=" + testWebhookSecret,
		"PARLEY_SHUTDOWN_TIMEOUT=5s",
	}
	var logw io.Writer
	if testing.Verbose() {
		logw = os.Stderr
	}
	var insts []*localcluster.Instance
	for _, id := range []string{"n-a", "n-b"} {
		port, err := localcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		inst, err := localcluster.Start(bin, localcluster.InstanceConfig{ID: id + "-" + suffix, Port: port, Secret: secret,
			Brokers: brokers, MongoURI: mongo, MongoDB: "parley_notify_" + suffix, DataDir: t.TempDir(),
			Env: env, CleanEnv: true, Log: logw})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Kill() })
		insts = append(insts, inst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, inst := range insts {
		if err := inst.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a := &testServer{t: t, base: insts[0].URL()}
	alice, bob := a.login("alice"), a.login("bob")
	var dm roomObj
	mustJSON(t, a.call("POST", "/api/dms", alice, `{"user":"bob"}`, 200), &dm)

	// alice writes to bob through whichever instance is up; after a few
	// messages, the instance whose notifications consumer holds them (its
	// parley-notify lag is above 0) is killed, and restarted later.
	const total = 30
	sent := 0
	killed := -1
	for sent < total {
		for _, inst := range insts {
			if !inst.Running() {
				continue
			}
			s := &testServer{t: t, base: inst.URL()}
			st, b := s.do("POST", "/api/rooms/"+dm.Room+"/messages", alice, fmt.Sprintf(`{"id":"m%d","text":"message %d"}`, sent, sent))
			if st == 202 {
				sent++
			} else {
				t.Logf("post %d via %s: %d %s", sent, inst.ID(), st, b)
			}
			break
		}
		if sent == total/2 && killed < 0 {
			for deadline := time.Now().Add(5 * time.Second); killed < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				for i, inst := range insts {
					if notifyLag(inst.URL()) > 0 {
						killed = i
						break
					}
				}
			}
			if killed < 0 {
				t.Fatal("no instance holds pending notifications (parley-notify lag 0 on both)")
			}
			t.Logf("kill -9 %s, which holds %.0f pending", insts[killed].ID(), notifyLag(insts[killed].URL()))
			insts[killed].Kill()
			go func(inst *localcluster.Instance) {
				time.Sleep(3 * time.Second)
				if err := inst.Restart(); err != nil {
					t.Errorf("restart: %v", err)
				}
			}(insts[killed])
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every message is a direct message bob has not read: each one is due,
	// once. The survivor takes the partition over after the group's
	// session times out, and reads it again from the last commit.
	survivor := &testServer{t: t, base: insts[1-killed].URL()}
	var notes []note
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		notes, _, _ = survivor.notifications(bob, "?limit=200")
		if len(notes) >= total {
			break
		}
	}
	seqs := map[int64]int{}
	ids := map[string]bool{}
	for _, n := range notes {
		seqs[n.Seq]++
		ids[n.ID] = true
	}
	if len(notes) != total || len(seqs) != total || len(ids) != total {
		t.Fatalf("%d notifications listed (%d seqs, %d ids), want %d once each", len(notes), len(seqs), len(ids), total)
	}
	// Webhooks: each notification under one delivery id, delivered (the
	// receiver fails each id's first attempt).
	got := hook.waitAttempts(total, 2, 60*time.Second)
	for _, n := range notes {
		dids := got[n.ID]
		if len(dids) != 1 {
			t.Fatalf("notification %s (seq %d) came under delivery ids %v", n.ID, n.Seq, dids)
		}
		for id, attempts := range dids {
			if attempts < 2 {
				t.Fatalf("delivery %s: %d attempts; the receiver fails the first", id, attempts)
			}
		}
	}
	if len(got) != total {
		t.Fatalf("webhooks for %d notifications, want %d", len(got), total)
	}
}

// notifyLag is an instance's parley_consumer_lag{group="parley-notify"}, -1
// when it does not answer.
func notifyLag(base string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return -1
	}
	lag := 0.0
	for _, m := range fams["parley_consumer_lag"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "group" && strings.EqualFold(l.GetValue(), "parley-notify") {
				lag += m.GetGauge().GetValue()
			}
		}
	}
	return lag
}
