package notify

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/app/chat"
)

var secret = []byte("webhook secret")

// receiver is a webhook receiver that answers the n-th request with
// answers[n] (the last one from then on) and records what it got.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	answers []int
	got     []received
	header  http.Header // set on every answer
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		answer := r.answers[min(n, len(r.answers)-1)]
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		w.WriteHeader(answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func webhook(id, url string) chat.Delivery {
	return chat.Delivery{ID: id, Kind: chat.DeliverWebhook, URL: url,
		Body: []byte(`{"id":"` + id + `","room":"general","seq":7,"kind":"mention"}`)}
}

func TestWebhookRetriedUntilAnswered(t *testing.T) {
	rcv := newReceiver(t, 500, 503, 200)
	store, metrics := newMemStore(), &countMetrics{}
	s := run(t, Config{Store: store, WebhookSecret: secret, Metrics: metrics})
	d := webhook("d1", rcv.srv.URL)
	store.queue(d)
	s.Kick()
	store.waitFinished(t, "d1", 5*time.Second)

	got := rcv.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for i, r := range got {
		if id := r.header.Get(HeaderDelivery); id != "d1" {
			t.Errorf("request %d: %s %q, want d1", i, HeaderDelivery, id)
		}
		if !Verify(secret, r.body, r.header.Get(HeaderSignature)) {
			t.Errorf("request %d: signature %q does not verify", i, r.header.Get(HeaderSignature))
		}
		if string(r.body) != string(d.Body) {
			t.Errorf("request %d: body %s, want %s", i, r.body, d.Body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
	}
	finished, retries, _, queued := store.snapshot()
	if len(finished) != 1 || queued != 0 {
		t.Errorf("finished %v, %d still queued; want d1 finished once", finished, queued)
	}
	if len(retries) != 2 || retries[0].attempts != 1 || retries[1].attempts != 2 {
		t.Errorf("retries %+v, want attempts 1 then 2", retries)
	}
	if metrics.get("webhook/retry") != 2 || metrics.get("webhook/sent") != 1 {
		t.Errorf("metrics %v, want 2 retries and 1 sent", metrics)
	}
}

// closedURL is a URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

func TestWebhookGivenUpAfterMaxAttemptsWithoutBlockingOthers(t *testing.T) {
	store, metrics := newMemStore(), &countMetrics{}
	// A receiver that never answers, held until the test ends.
	stop := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(stalled.Close)
	t.Cleanup(func() { close(stop) })
	healthy := newReceiver(t, 200)

	s := run(t, Config{Store: store, WebhookSecret: secret, Metrics: metrics, MaxAttempts: 3,
		Workers: 4, Timeout: 3 * time.Second})
	store.queue(webhook("dead", closedURL(t)), webhook("slow", stalled.URL))
	s.Kick()
	store.waitFinished(t, "dead", 5*time.Second)
	// The slow one holds a worker for up to Timeout; a delivery queued
	// meanwhile goes out at once all the same.
	start := time.Now()
	store.queue(webhook("ok", healthy.srv.URL))
	s.Kick()
	store.waitFinished(t, "ok", 2*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("healthy delivery took %s behind a stalled one", took)
	}

	_, retries, _, _ := store.snapshot()
	var deadRetries []int
	for _, r := range retries {
		if r.id == "dead" {
			deadRetries = append(deadRetries, r.attempts)
		}
	}
	if len(deadRetries) != 2 || deadRetries[0] != 1 || deadRetries[1] != 2 {
		t.Errorf("retries of the dead one %v, want attempts 1, 2 (then given up at the 3rd)", deadRetries)
	}
	if metrics.get("webhook/gave_up") != 1 || metrics.get("webhook/retry") != 2 {
		t.Errorf("metrics %v, want 1 gave_up and 2 retries", metrics)
	}
	if metrics.get("webhook/sent") != 1 {
		t.Errorf("metrics %v, want the healthy one sent", metrics)
	}
}

func TestWebhookRefusedIsGivenUp(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 410, 413, 301} {
		rcv := newReceiver(t, code)
		store, metrics := newMemStore(), &countMetrics{}
		s := run(t, Config{Store: store, WebhookSecret: secret, Metrics: metrics})
		store.queue(webhook("d", rcv.srv.URL))
		s.Kick()
		store.waitFinished(t, "d", 5*time.Second)
		if n := len(rcv.requests()); n != 1 {
			t.Errorf("%d: %d requests, want 1", code, n)
		}
		if metrics.get("webhook/gave_up") != 1 {
			t.Errorf("%d: metrics %v, want gave_up", code, metrics)
		}
	}
}

func TestWebhookHonoursRetryAfter(t *testing.T) {
	rcv := newReceiver(t, 429, 200)
	rcv.header.Set("Retry-After", "1")
	store := newMemStore()
	s := run(t, Config{Store: store, WebhookSecret: secret})
	store.queue(webhook("d", rcv.srv.URL))
	s.Kick()
	store.waitFinished(t, "d", 5*time.Second)
	got := rcv.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	// The backoff alone would be at most 10 ms.
	if gap := got[1].at.Sub(got[0].at); gap < 900*time.Millisecond {
		t.Errorf("second attempt %s after the first, want Retry-After's 1 s", gap)
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	rcv := newReceiver(t, 503, 200)
	rcv.header.Set("Retry-After", "3600")
	store := newMemStore()
	s := run(t, Config{Store: store, WebhookSecret: secret, MaxRetryAfter: 50 * time.Millisecond})
	store.queue(webhook("d", rcv.srv.URL))
	s.Kick()
	store.waitFinished(t, "d", 3*time.Second)
	_, retries, _, _ := store.snapshot()
	if len(retries) != 1 {
		t.Fatalf("retries %+v, want 1", retries)
	}
	if wait := retries[0].next.Sub(retries[0].at); wait > 60*time.Millisecond || wait < 40*time.Millisecond {
		t.Errorf("retry after %s, want MaxRetryAfter's 50 ms", wait)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{"999999999999", 24 * time.Hour},
		{"soon", 0},
		{"Thu, 03 Dec 2026 12:00:30 GMT", 30 * time.Second},
		{"Thu, 03 Dec 2026 11:00:00 GMT", 0},
	} {
		if got := retryAfter(c.in, now); got != c.want {
			t.Errorf("retryAfter(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestBackoffGrowsCappedWithJitter(t *testing.T) {
	s, err := New(Config{Store: newMemStore(), BackoffBase: time.Second, BackoffMax: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		made int
		full time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {40, 10 * time.Second}} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := s.backoff(c.made)
			if d < c.full/2 || d > c.full {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", c.made, d, c.full/2, c.full)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", c.made, seen)
		}
	}
}

func TestSignAndVerify(t *testing.T) {
	// RFC 4231-style known answer (HMAC-SHA256 of the classic sentence).
	body := []byte("The quick brown fox jumps over the lazy dog")
	const want = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got := Sign([]byte("key"), body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !Verify([]byte("key"), body, want) {
		t.Error("Verify refuses a good signature")
	}
	for name, c := range map[string]struct {
		secret, body []byte
		header       string
	}{
		"other body":   {[]byte("key"), []byte("The quick brown fox jumps over the lazy cat"), want},
		"other secret": {[]byte("kez"), body, want},
		"no prefix":    {[]byte("key"), body, want[len("sha256="):]},
		"other algo":   {[]byte("key"), body, "sha1=" + want[len("sha256="):]},
		"not hex":      {[]byte("key"), body, "sha256=zz"},
		"truncated":    {[]byte("key"), body, want[:len(want)-2]},
		"empty":        {[]byte("key"), body, ""},
	} {
		if Verify(c.secret, c.body, c.header) {
			t.Errorf("%s: Verify accepts it", name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	store := newMemStore()
	for name, c := range map[string]Config{
		"no store":            {},
		"lease under timeout": {Store: store, Timeout: time.Minute, Lease: 30 * time.Second},
		"negative workers":    {Store: store, Workers: -1},
		"bad vapid":           {Store: store, VAPID: VAPID{PublicKey: "x", PrivateKey: "y"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepts it", name)
		}
	}
	if _, err := New(Config{Store: store}); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// countingTransport counts the requests in flight on the client side.
type countingTransport struct {
	mu             sync.Mutex
	inFlight, most int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.inFlight++
	c.most = max(c.most, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	return http.DefaultTransport.RoundTrip(r)
}

func TestWorkersBoundAttemptsInFlight(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	store := newMemStore()
	count := &countingTransport{}
	s := run(t, Config{Store: store, Workers: 2, Timeout: 300 * time.Millisecond, MaxAttempts: 1,
		Client: &http.Client{Transport: count}})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		store.queue(webhook(id, srv.URL))
	}
	s.Kick()
	store.waitFor(t, 5*time.Second, "all given up", func() bool { return len(store.finished) == 5 })
	count.mu.Lock()
	defer count.mu.Unlock()
	if count.most != 2 {
		t.Errorf("%d attempts in flight at most, want Workers' 2", count.most)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.claimMax > 2 {
		t.Errorf("claimed up to %d at once with 2 workers", store.claimMax)
	}
}

func TestSendersShareOneOutbox(t *testing.T) {
	rcv := newReceiver(t, 200)
	store := newMemStore()
	a := run(t, Config{Store: store, WebhookSecret: secret})
	b := run(t, Config{Store: store, WebhookSecret: secret})
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = "d" + string(rune('a'+i%26)) + string(rune('0'+i/26))
		store.queue(webhook(ids[i], rcv.srv.URL))
	}
	a.Kick()
	b.Kick()
	store.waitFor(t, 5*time.Second, "all sent", func() bool { return len(store.finished) == len(ids) })
	seen := map[string]int{}
	for _, r := range rcv.requests() {
		seen[r.header.Get(HeaderDelivery)]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s sent %d times, want once", id, seen[id])
		}
	}
}

func TestShutdownReleasesAttemptsInFlight(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	store, metrics := newMemStore(), &countMetrics{}
	s, err := New(Config{Store: store, Metrics: metrics, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	store.queue(webhook("d", srv.URL))
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not stop with an attempt in flight (Timeout is 10 s)")
	}
	_, retries, _, queued := store.snapshot()
	if queued != 1 || len(retries) != 1 || retries[0].attempts != 0 || retries[0].next.After(time.Now()) {
		t.Errorf("retries %+v, %d queued; want the delivery released, due now, attempts still 0", retries, queued)
	}
	if metrics.String() != "map[]" {
		t.Errorf("metrics %v: a cut-short attempt counts nothing", metrics)
	}
}

func TestClaimFailuresPauseThenRecover(t *testing.T) {
	rcv := newReceiver(t, 200)
	store := newMemStore()
	store.claimErr = errors.New("store down")
	store.queue(webhook("d", rcv.srv.URL))
	run(t, Config{Store: store, Poll: 10 * time.Millisecond})
	time.Sleep(700 * time.Millisecond)
	store.mu.Lock()
	claims := store.claims
	store.claimErr = nil
	store.mu.Unlock()
	// Polling every 10 ms would make 70; pausing 10, 20, 40... ms makes 7.
	if claims < 3 || claims > 12 {
		t.Errorf("%d claims in 700 ms of store failure, want a growing pause (about 7)", claims)
	}
	// The pause is bounded (5 s), and the delivery goes out once the
	// store is back.
	store.waitFinished(t, "d", 7*time.Second)
}
