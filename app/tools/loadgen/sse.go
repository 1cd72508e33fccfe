package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// --transport sse: a receiver holds GET /api/rooms/{room}/events (one TCP
// connection each, spoken to by hand so that it costs one descriptor and two
// small buffers); a sender POSTs /api/rooms/{room}/messages over one
// keep-alive connection of its own, and a 202 is its ack.

// dialSSE opens receiver i's event stream on room. The server joins the room
// before it sends the response headers, so the receiver counts as joined
// once they arrive.
func (r *runner) dialSSE(ctx context.Context, base, token string, i, room int) (*client, error) {
	u, err := url.Parse(base + "/api/rooms/" + r.roomName(room) + "/events")
	if err != nil {
		return nil, err
	}
	conn, err := r.netDial(ctx, u.Host, sourceIP(i, r.perAddr))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReaderSize(conn, 2048)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sse request: %w", err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sse response: %w", err)
	}
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, fmt.Errorf("sse %s: HTTP %d %s", u.Path, resp.StatusCode, bytes.TrimSpace(body))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		conn.Close()
		return nil, fmt.Errorf("sse %s: Content-Type %q", u.Path, ct)
	}
	_ = conn.SetDeadline(time.Time{})
	cl := &client{sse: conn, room: room, recv: true, joined: make(chan struct{}), done: make(chan struct{})}
	close(cl.joined)
	go r.sseReadLoop(cl, resp.Body)
	return cl, nil
}

// sseReadLoop reads the event stream (id / event / data lines, a blank line
// ends an event, ":" lines are comments) until the connection closes.
func (r *runner) sseReadLoop(cl *client, body io.Reader) {
	defer close(cl.done)
	br := bufio.NewReaderSize(body, 2048)
	var id, event, data []byte
	hasData := false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return
		}
		now := time.Now()
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if hasData && (len(event) == 0 || string(event) == "message") {
				seq := r.message(cl, data, now)
				if want, err := strconv.ParseInt(string(id), 10, 64); err != nil || want != seq {
					r.c.errors.Add(1) // the id must be the seq: it is the resume point
				}
			}
			id, event, data, hasData = id[:0], event[:0], data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			id = append(id[:0], value...)
		case "event":
			event = append(event[:0], value...)
		case "data":
			// The server sends one data line per event; more are joined with
			// newlines, as EventSource does.
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
}

// dialPoster makes sender i's HTTP client: one keep-alive connection, opened
// now (GET /healthz) so that it counts as connected like a WebSocket.
func (r *runner) dialPoster(ctx context.Context, base, token string, i, room int) (*client, error) {
	src := sourceIP(i, r.perAddr)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return r.netDial(ctx, addr, src)
		},
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
	}}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cl := &client{post: hc, postURL: base + "/api/rooms/" + r.roomName(room) + "/messages", token: token,
		room: room, joined: make(chan struct{}), done: make(chan struct{})}
	close(cl.joined)
	return cl, nil
}

// postOne sends one message by POST and counts the answer: 202 acked, 429
// rate limited, anything else an error. It is not bound to the sending
// phase's context, so the last send of the phase is answered, not cut off.
func (r *runner) postOne(cl *client, body []byte) {
	req, _ := http.NewRequest("POST", cl.postURL, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.post.Do(req)
	if err != nil {
		r.c.sendFailed.Add(1)
		r.c.errors.Add(1)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted:
		r.c.acked.Add(1)
		r.roomAck[cl.room].Add(1)
	case http.StatusTooManyRequests:
		r.c.rateLimited.Add(1)
	default:
		r.c.sendFailed.Add(1)
		r.c.errors.Add(1)
	}
}
