package handlers

import "testing"

// BenchmarkDecodeFrame measures decodeFrame on one client send frame (UTF-8
// check and JSON decode), the work of every WebSocket message received.
func BenchmarkDecodeFrame(b *testing.B) {
	data := []byte(`{"type":"send","room":"general","id":"9f1c2a7e-0b3d-4c5e-8f9a-1b2c3d4e5f60","text":"hello, how is everyone doing today?"}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := decodeFrame(data)
		if err != nil || f.Type != "send" {
			b.Fatal(err)
		}
	}
}
