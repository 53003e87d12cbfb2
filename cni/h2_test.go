package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testHeaders = [][2]string{
	{":method", "POST"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/s/M"},
	{"content-type", "application/grpc"}, {"te", "trailers"},
}

// A 5 MB request and a 5 MB reply through net/http's h2c server: flow control both ways (its
// windows are smaller than the body, ours is not), and a trailer of 40 KB, which it sends as
// HEADERS plus CONTINUATION frames, Huffman coded.
func TestH2BigBodiesAndContinuationAgainstNetHTTP(t *testing.T) {
	request := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16)
	reply := bytes.Repeat([]byte("fedcba9876543210"), 5<<20/16)
	long := strings.Repeat("status message ", 40<<10/15)
	path := grpcServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Equal(body, request) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Type", "application/grpc")
		w.Write(reply)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", long)
	})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := roundTrip(conn, testHeaders, request, "grpc-status", "grpc-message", "content-type")
	if err != nil {
		t.Fatal(err)
	}
	if resp.header[":status"] != "200" || resp.header["content-type"] != "application/grpc" {
		t.Fatalf("headers %v", resp.header)
	}
	if !bytes.Equal(resp.body, reply) {
		t.Errorf("reply of %d bytes differs", len(resp.body))
	}
	if resp.trailer["grpc-status"] != "0" || resp.trailer["grpc-message"] != long {
		t.Errorf("trailers: status %q, message of %d bytes", resp.trailer["grpc-status"], len(resp.trailer["grpc-message"]))
	}
}

// frame is one frame the scripted server sends or saw.
type frame struct {
	kind, flags byte
	stream      uint32
	payload     []byte
}

func (f frame) bytes() []byte {
	b := []byte{byte(len(f.payload) >> 16), byte(len(f.payload) >> 8), byte(len(f.payload)), f.kind, f.flags}
	b = binary.BigEndian.AppendUint32(b, f.stream)
	return append(b, f.payload...)
}

func readFrame(r io.Reader) (frame, error) {
	head := make([]byte, 9)
	if _, err := io.ReadFull(r, head); err != nil {
		return frame{}, err
	}
	f := frame{kind: head[3], flags: head[4], stream: binary.BigEndian.Uint32(head[5:]) & maxWindow}
	f.payload = make([]byte, int(head[0])<<16|int(head[1])<<8|int(head[2]))
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// scripted runs roundTrip against a server goroutine on a unix socket that reads the
// preface and then calls serve with the connection and a function returning the next frame
// the client sent; then it ends its side of the connection.
func scripted(t *testing.T, body []byte, serve func(c net.Conn, next func() frame)) (*h2Response, error) {
	t.Helper()
	listener, err := net.Listen("unix", filepath.Join(t.TempDir(), "h2.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		server, err := listener.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer server.Close()
		preface := make([]byte, len(clientPreface))
		if _, err := io.ReadFull(server, preface); err != nil || string(preface) != clientPreface {
			t.Errorf("preface %q %v", preface, err)
			return
		}
		serve(server, func() frame {
			f, err := readFrame(server)
			if err != nil {
				t.Errorf("reading the client: %v", err)
			}
			return f
		})
		server.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, server) // until the client closes
	}()
	client, err := net.Dial("unix", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := roundTrip(client, testHeaders, body, "grpc-status")
	client.Close()
	<-done
	return resp, err
}

// literal is an HPACK literal field without indexing (plain strings).
func literal(name, value string) []byte {
	return appendHPACKString(appendHPACKString([]byte{0}, name), value)
}

// The server's small window and frame size, a PING, WINDOW_UPDATEs, padding, a PRIORITY
// block split over CONTINUATION, an informational response and trailers.
func TestH2FlowControlAndControlFrames(t *testing.T) {
	body := bytes.Repeat([]byte("x"), defaultWindow+5000)
	var got []byte
	var pingAck, settingsAck bool
	resp, err := scripted(t, body, func(c net.Conn, next func() frame) {
		c.Write(frame{frameSettings, 0, 0, settingsPayload(settingMaxFrameSize, 20000)}.bytes())
		for len(got) < len(body) || !settingsAck || !pingAck {
			f := next()
			switch {
			case f.kind == frameData:
				if len(f.payload) > 20000 {
					t.Errorf("DATA of %d bytes", len(f.payload))
				}
				got = append(got, f.payload...)
				if len(got) == defaultWindow { // both windows used up: the client waits
					c.Write(frame{framePing, 0, 0, []byte("12345678")}.bytes())
					c.Write(frame{frameWindowUpdate, 0, 1, binary.BigEndian.AppendUint32(nil, 3000)}.bytes())
					c.Write(frame{frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, 2000)}.bytes())
					c.Write(frame{frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, 3000)}.bytes())
					c.Write(frame{frameWindowUpdate, 0, 1, binary.BigEndian.AppendUint32(nil, 2000)}.bytes())
				}
			case f.kind == frameSettings && f.flags&flagAck != 0:
				settingsAck = true
			case f.kind == framePing:
				pingAck = f.flags&flagAck != 0 && string(f.payload) == "12345678"
			}
		}
		c.Write(frame{frameHeaders, flagEndHeaders, 1, literal(":status", "100")}.bytes())
		block := append([]byte{0, 0, 0, 0, 0}, literal(":status", "200")...) // priority fields
		c.Write(frame{frameHeaders, flagPriority | flagPadded, 1, append(append([]byte{3}, block[:7]...), 0, 0, 0)}.bytes())
		c.Write(frame{frameContinuation, flagEndHeaders, 1, block[7:]}.bytes())
		c.Write(frame{frameData, flagPadded, 1, []byte{2, 'o', 'k', 0, 0}}.bytes())
		c.Write(frame{frameHeaders, flagEndHeaders | flagEndStream, 1, literal("grpc-status", "0")}.bytes())
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) || !pingAck || !settingsAck {
		t.Errorf("body %d bytes, ping ack %v, settings ack %v", len(got), pingAck, settingsAck)
	}
	if resp.header[":status"] != "200" || string(resp.body) != "ok" || resp.trailer["grpc-status"] != "0" {
		t.Errorf("%v %q %v", resp.header, resp.body, resp.trailer)
	}
}

func TestH2RefusalsAndResets(t *testing.T) {
	cases := []struct {
		name    string
		frames  []frame
		refused bool
		closed  bool
		msg     string
	}{
		{"goaway before the stream", []frame{{frameGoAway, 0, 0, append(make([]byte, 8), 'b', 'y', 'e')}},
			true, false, "refused the call: GOAWAY NO_ERROR: bye"},
		{"refused stream", []frame{{frameRSTStream, 0, 1, []byte{0, 0, 0, 7}}}, true, false, "REFUSED_STREAM"},
		{"cancelled stream", []frame{{frameRSTStream, 0, 1, []byte{0, 0, 0, 8}}}, false, false, "reset the stream (CANCEL)"},
		{"goaway after it, then close", []frame{{frameGoAway, 0, 0, append([]byte{0, 0, 0, 1}, 0, 0, 0, 2)}},
			false, true, "closed the connection before it answered (GOAWAY INTERNAL_ERROR)"},
		{"push", []frame{{framePushPromise, flagEndHeaders, 1, []byte{0, 0, 0, 2}}}, false, false, "protocol error"},
		{"zero window increment", []frame{{frameWindowUpdate, 0, 0, []byte{0, 0, 0, 0}}}, false, false, "WINDOW_UPDATE"},
		{"oversized frame", []frame{{frameData, 0, 1, make([]byte, defaultFrameSize+1)}}, false, false, "bytes"},
	}
	for _, c := range cases {
		_, err := scripted(t, []byte("hello"), func(conn net.Conn, next func() frame) {
			for _, f := range c.frames {
				conn.Write(f.bytes())
			}
		})
		var h2 *h2Error
		if !errors.As(err, &h2) || h2.refused != c.refused || h2.closed != c.closed || !strings.Contains(h2.msg, c.msg) {
			t.Errorf("%s: %v (%+v)", c.name, err, h2)
		}
	}
}

// Trailers-only: the status in the one HEADERS frame that ends the stream; the request's
// header block as the server decodes it.
func TestH2TrailersOnlyAndRequestHeaders(t *testing.T) {
	var fields []headerField
	resp, err := scripted(t, []byte("hello"), func(c net.Conn, next func() frame) {
		for f := next(); f.kind != frameHeaders; f = next() {
		}
		c.Write(frame{frameHeaders, flagEndHeaders | flagEndStream, 1,
			append(literal(":status", "200"), literal("grpc-status", "12")...)}.bytes())
	})
	if err != nil || resp.header["grpc-status"] != "12" || resp.trailer != nil {
		t.Fatalf("%v %+v", err, resp)
	}
	// What roundTrip wrote decodes to the headers it was given.
	block := encodeHeaders(append(testHeaders, [2]string{"x-long", strings.Repeat("v", 300)}))
	if err := newHPACKDecoder().decode(block, func(n, v string) { fields = append(fields, headerField{n, v}) }); err != nil {
		t.Fatal(err)
	}
	if len(fields) != len(testHeaders)+1 || fields[3] != (headerField{":path", "/s/M"}) || len(fields[6].value) != 300 {
		t.Errorf("%v", fields)
	}
}
