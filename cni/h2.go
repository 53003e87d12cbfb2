package main

// A minimal HTTP/2 client (RFC 9113) for one request on a fresh connection, with prior
// knowledge ("h2c"): preface, SETTINGS, one stream's HEADERS and DATA under the peer's flow
// control, the response's HEADERS, DATA and trailers (with CONTINUATION); it answers SETTINGS
// and PING and follows WINDOW_UPDATE, GOAWAY and RST_STREAM. net/http costs ~1 ms more CPU per
// exec (package initialisation, transport goroutines), a third of the binary's budget.

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	settingEnablePush        = 0x2
	settingInitialWindowSize = 0x4
	settingMaxFrameSize      = 0x5

	defaultWindow    = 65535
	defaultFrameSize = 16384
	maxWindow        = 1<<31 - 1
	// recvWindow is the window the binary grants (stream and connection): a reply of this
	// size needs no WINDOW_UPDATE; larger ones get one whenever half of it was consumed.
	recvWindow = 1 << 30
	// maxHeaderBlock bounds one response header block (grpc-message may be long, not this).
	maxHeaderBlock = 1 << 20

	errCodeRefusedStream = 0x7
)

const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Error is a failure of the HTTP/2 exchange; refused means the server did not process the
// stream (GOAWAY before it, REFUSED_STREAM), closed that the connection ended before the
// response did.
type h2Error struct {
	msg     string
	refused bool
	closed  bool
}

func (e *h2Error) Error() string { return e.msg }

func protocolError(msg string) error { return &h2Error{msg: "HTTP/2 protocol error: " + msg} }

// h2Response is what came back on the stream: the response headers and trailers (only the
// names asked for, lower case) and the body.
type h2Response struct {
	header  map[string]string
	trailer map[string]string
	body    []byte
}

type h2Client struct {
	conn       io.ReadWriter
	in         []byte // read buffer: in[start:end] is unread
	start, end int
	out        []byte // frames to write
	sendConn   int64  // what the peer lets us send, on the connection and on the stream
	sendStream int64
	initWindow int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame   int   // the peer's SETTINGS_MAX_FRAME_SIZE
	consumed   int64 // DATA bytes received since the last WINDOW_UPDATE we sent
	hpack      *hpackDecoder
	wanted     map[string]bool
	goAway     string
}

// roundTrip sends one request (headers as name/value pairs, then body) on stream 1 and reads
// the response; wanted names the response header and trailer fields to keep.
func roundTrip(conn io.ReadWriter, headers [][2]string, body []byte, wanted ...string) (*h2Response, error) {
	c := &h2Client{
		conn: conn, in: make([]byte, 32<<10), sendConn: defaultWindow, sendStream: defaultWindow,
		initWindow: defaultWindow, maxFrame: defaultFrameSize, hpack: newHPACKDecoder(),
		wanted: map[string]bool{":status": true},
	}
	for _, name := range wanted {
		c.wanted[name] = true
	}
	c.out = append(c.out, clientPreface...)
	c.frame(frameSettings, 0, 0, settingsPayload(settingEnablePush, 0, settingInitialWindowSize, recvWindow))
	c.windowUpdate(0, recvWindow-defaultWindow)
	block := encodeHeaders(headers)
	first := block[:min(len(block), c.maxFrame)]
	block = block[len(first):]
	flags := byte(0)
	if len(block) == 0 {
		flags = flagEndHeaders
	}
	c.frame(frameHeaders, flags, 1, first)
	for len(block) > 0 {
		part := block[:min(len(block), c.maxFrame)]
		block = block[len(part):]
		flags = 0
		if len(block) == 0 {
			flags = flagEndHeaders
		}
		c.frame(frameContinuation, flags, 1, part)
	}
	resp := &h2Response{header: map[string]string{}}
	sent, done := 0, false
	for !done {
		for sent < len(body) && c.sendConn > 0 && c.sendStream > 0 {
			n := int(min(int64(len(body)-sent), int64(c.maxFrame), c.sendConn, c.sendStream))
			flags := byte(0)
			if sent+n == len(body) {
				flags = flagEndStream
			}
			c.frame(frameData, flags, 1, body[sent:sent+n])
			sent += n
			c.sendConn -= int64(n)
			c.sendStream -= int64(n)
		}
		if err := c.flush(); err != nil {
			return nil, err
		}
		var err error
		if done, err = c.readFrame(resp); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// readFrame reads and handles one frame; done when the response's stream has ended.
func (c *h2Client) readFrame(resp *h2Response) (bool, error) {
	kind, flags, stream, payload, err := c.next()
	if err != nil {
		return false, err
	}
	switch kind {
	case frameData:
		if stream != 1 {
			return false, protocolError("DATA on stream " + strconv.Itoa(int(stream)))
		}
		c.consumed += int64(len(payload))
		if c.consumed >= recvWindow/2 {
			c.windowUpdate(0, uint32(c.consumed))
			c.windowUpdate(1, uint32(c.consumed))
			c.consumed = 0
		}
		data, err := unpad(flags, payload)
		if err != nil {
			return false, err
		}
		if resp.header[":status"] == "" {
			return false, protocolError("DATA before the response headers")
		}
		resp.body = append(resp.body, data...)
		return flags&flagEndStream != 0, nil
	case frameHeaders:
		if stream != 1 {
			return false, protocolError("HEADERS on stream " + strconv.Itoa(int(stream)))
		}
		fields, err := c.headerBlock(flags, payload)
		if err != nil {
			return false, err
		}
		if resp.header[":status"] == "" {
			if s := fields[":status"]; len(s) == 3 && s[0] == '1' { // informational: skip
				return false, nil
			}
			if fields[":status"] == "" {
				return false, protocolError("response headers without :status")
			}
			resp.header = fields
		} else {
			if flags&flagEndStream == 0 {
				return false, protocolError("trailers that do not end the stream")
			}
			resp.trailer = fields
		}
		return flags&flagEndStream != 0, nil
	case frameRSTStream:
		if stream != 1 || len(payload) != 4 {
			return false, protocolError("bad RST_STREAM")
		}
		code := binary.BigEndian.Uint32(payload)
		return false, &h2Error{msg: "the agent reset the stream (" + errorCodeName(code) + ")",
			refused: code == errCodeRefusedStream}
	case frameSettings:
		if stream != 0 || len(payload)%6 != 0 {
			return false, protocolError("bad SETTINGS")
		}
		if flags&flagAck != 0 {
			return false, nil
		}
		if err := c.settings(payload); err != nil {
			return false, err
		}
		c.frame(frameSettings, flagAck, 0, nil)
	case framePing:
		if stream != 0 || len(payload) != 8 {
			return false, protocolError("bad PING")
		}
		if flags&flagAck == 0 {
			c.frame(framePing, flagAck, 0, payload)
		}
	case frameGoAway:
		if stream != 0 || len(payload) < 8 {
			return false, protocolError("bad GOAWAY")
		}
		last := binary.BigEndian.Uint32(payload) & maxWindow
		c.goAway = "GOAWAY " + errorCodeName(binary.BigEndian.Uint32(payload[4:]))
		if len(payload) > 8 {
			c.goAway += ": " + string(payload[8:])
		}
		if last < 1 { // the stream will not be processed
			return false, &h2Error{msg: "the agent refused the call: " + c.goAway, refused: true}
		}
	case frameWindowUpdate:
		if len(payload) != 4 {
			return false, protocolError("bad WINDOW_UPDATE")
		}
		inc := int64(binary.BigEndian.Uint32(payload) & maxWindow)
		window := &c.sendConn
		if stream == 1 {
			window = &c.sendStream
		} else if stream != 0 {
			return false, nil
		}
		if inc == 0 || *window+inc > maxWindow {
			return false, protocolError("bad WINDOW_UPDATE increment")
		}
		*window += inc
	case framePushPromise, frameContinuation:
		return false, protocolError("unexpected frame type " + strconv.Itoa(int(kind)))
	}
	return false, nil // PRIORITY and unknown types are ignored
}

// headerBlock collects a header block (HEADERS then CONTINUATION frames) and decodes it,
// keeping the wanted fields.
func (c *h2Client) headerBlock(flags byte, payload []byte) (map[string]string, error) {
	fragment, err := unpad(flags, payload)
	if err != nil {
		return nil, err
	}
	if flags&flagPriority != 0 {
		if len(fragment) < 5 {
			return nil, protocolError("short HEADERS")
		}
		fragment = fragment[5:]
	}
	block := append([]byte(nil), fragment...)
	for more := flags&flagEndHeaders == 0; more; {
		kind, contFlags, stream, payload, err := c.next()
		if err != nil {
			return nil, err
		}
		if kind != frameContinuation || stream != 1 {
			return nil, protocolError("a header block not continued by CONTINUATION")
		}
		if block = append(block, payload...); len(block) > maxHeaderBlock {
			return nil, protocolError("header block larger than 1 MiB")
		}
		more = contFlags&flagEndHeaders == 0
	}
	fields := map[string]string{}
	err = c.hpack.decode(block, func(name, value string) {
		if c.wanted[name] {
			fields[name] = value
		}
	})
	if err != nil {
		return nil, &h2Error{msg: "HTTP/2 compression error: " + err.Error()}
	}
	return fields, nil
}

func (c *h2Client) settings(payload []byte) error {
	for ; len(payload) > 0; payload = payload[6:] {
		value := int64(binary.BigEndian.Uint32(payload[2:6]))
		switch binary.BigEndian.Uint16(payload) {
		case settingInitialWindowSize:
			if value > maxWindow {
				return protocolError("SETTINGS_INITIAL_WINDOW_SIZE too large")
			}
			c.sendStream += value - c.initWindow // RFC 9113 6.9.2
			c.initWindow = value
		case settingMaxFrameSize:
			if value < defaultFrameSize || value > 1<<24-1 {
				return protocolError("bad SETTINGS_MAX_FRAME_SIZE")
			}
			c.maxFrame = int(value)
		}
	}
	return nil
}

// next reads one frame; its payload is valid until the next read.
func (c *h2Client) next() (kind, flags byte, stream uint32, payload []byte, err error) {
	head, err := c.read(9)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	size := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	kind, flags = head[3], head[4]
	stream = binary.BigEndian.Uint32(head[5:9]) & maxWindow
	if size > defaultFrameSize { // the binary never raises SETTINGS_MAX_FRAME_SIZE
		return 0, 0, 0, nil, protocolError("frame of " + strconv.Itoa(size) + " bytes")
	}
	payload, err = c.read(size)
	return kind, flags, stream, payload, err
}

// read returns the next n bytes of the connection (n <= len(c.in) - 9).
func (c *h2Client) read(n int) ([]byte, error) {
	if c.end-c.start < n && c.start > 0 {
		c.end = copy(c.in, c.in[c.start:c.end])
		c.start = 0
	}
	for c.end-c.start < n {
		got, err := c.conn.Read(c.in[c.end:])
		c.end += got
		if err != nil && c.end-c.start < n {
			if errors.Is(err, io.EOF) {
				msg := "the agent closed the connection before it answered"
				if c.goAway != "" {
					msg += " (" + c.goAway + ")"
				}
				return nil, &h2Error{msg: msg, closed: true}
			}
			return nil, err
		}
	}
	c.start += n
	return c.in[c.start-n : c.start], nil
}

func (c *h2Client) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.out)
	c.out = c.out[:0]
	return err
}

func (c *h2Client) frame(kind, flags byte, stream uint32, payload []byte) {
	c.out = append(c.out, byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)), kind, flags)
	c.out = binary.BigEndian.AppendUint32(c.out, stream)
	c.out = append(c.out, payload...)
}

func (c *h2Client) windowUpdate(stream, increment uint32) {
	c.frame(frameWindowUpdate, 0, stream, binary.BigEndian.AppendUint32(nil, increment))
}

func settingsPayload(pairs ...uint32) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(pairs[i]))
		b = binary.BigEndian.AppendUint32(b, pairs[i+1])
	}
	return b
}

// unpad strips a PADDED frame's padding.
func unpad(flags byte, payload []byte) ([]byte, error) {
	if flags&flagPadded == 0 {
		return payload, nil
	}
	if len(payload) == 0 || int(payload[0]) > len(payload)-1 {
		return nil, protocolError("bad padding")
	}
	return payload[1 : len(payload)-int(payload[0])], nil
}

var errorCodes = []string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
	"STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
	"CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
}

func errorCodeName(code uint32) string {
	if int(code) < len(errorCodes) {
		return errorCodes[code]
	}
	return "error code " + strconv.FormatUint(uint64(code), 10)
}
