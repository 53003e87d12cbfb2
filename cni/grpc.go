package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// callError is a failed gRPC call; unavailable means the agent is not there (try again later).
type callError struct {
	msg         string
	unavailable bool
	notRunning  bool // no agent behind the socket: the call certainly reached nobody
}

func (e *callError) Error() string { return e.msg }

// gRPC status names, for messages.
var grpcCodes = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

const grpcUnavailable = 14

// grpcCall makes one unary gRPC call to server (a unix socket path starting with "/", or
// host:port) over HTTP/2 with prior knowledge, and returns the reply message.
func grpcCall(server, method string, request []byte, timeout time.Duration) ([]byte, error) {
	network, authority := "tcp", server
	if strings.HasPrefix(server, "/") {
		network, authority = "unix", "localhost"
		if _, err := os.Stat(server); err != nil {
			return nil, &callError{msg: "the socket does not exist", unavailable: true, notRunning: true}
		}
	}
	conn, err := net.DialTimeout(network, server, timeout)
	if err != nil {
		return nil, dialError(err, timeout)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, &callError{msg: err.Error()}
	}
	body := make([]byte, 5+len(request)) // gRPC's length-prefixed message, uncompressed
	binary.BigEndian.PutUint32(body[1:5], uint32(len(request)))
	copy(body[5:], request)
	path := "/contiv.cni.RemoteCNI/" + method
	resp, err := roundTrip(conn, [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", authority}, {":path", path},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"grpc-timeout", strconv.FormatInt(timeout.Milliseconds(), 10) + "m"},
	}, body, "grpc-status", "grpc-message")
	if err != nil {
		return nil, exchangeError(err, timeout)
	}
	if status := resp.header[":status"]; status != "200" {
		return nil, &callError{msg: fmt.Sprintf("HTTP status %s from %s", status, path)}
	}
	fields := resp.trailer
	if fields["grpc-status"] == "" { // a "trailers-only" answer: the status is in the headers
		fields = resp.header
	}
	if status := fields["grpc-status"]; status != "0" {
		code, convErr := strconv.Atoi(status)
		if convErr != nil {
			return nil, &callError{msg: fmt.Sprintf("no gRPC status in the answer to %s", path)}
		}
		name := "?"
		if code >= 0 && code < len(grpcCodes) {
			name = grpcCodes[code]
		}
		return nil, &callError{
			msg:         fmt.Sprintf("gRPC status %d (%s): %s", code, name, percentDecode(fields["grpc-message"])),
			unavailable: code == grpcUnavailable}
	}
	data := resp.body
	if len(data) < 5 || data[0] != 0 {
		return nil, &callError{msg: "the answer holds no uncompressed gRPC message"}
	}
	size := binary.BigEndian.Uint32(data[1:5])
	if uint64(size) != uint64(len(data)-5) {
		return nil, &callError{msg: fmt.Sprintf("the answer's message is %d bytes, announced %d", len(data)-5, size)}
	}
	return data[5:], nil
}

// dialError classifies a failed connect: nobody listening on the socket (a killed agent's
// stale socket, or the socket removed meanwhile) means the agent is not running.
func dialError(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &callError{msg: fmt.Sprintf("no answer within %s", timeout), unavailable: true}
	}
	msg := err.Error()
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		msg = opErr.Err.Error()
	}
	return &callError{msg: msg, unavailable: true,
		notRunning: errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)}
}

// exchangeError classifies a failed exchange: no answer in time, a connection the agent
// closed, or a stream it refused is "unavailable" (the agent is restarting or stuck),
// anything else an error of the call.
func exchangeError(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &callError{msg: fmt.Sprintf("no answer within %s", timeout), unavailable: true}
	}
	var h2 *h2Error
	if errors.As(err, &h2) {
		return &callError{msg: h2.msg, unavailable: h2.refused || h2.closed}
	}
	for _, errno := range []syscall.Errno{syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, errno) {
			return &callError{msg: "the agent closed the connection before it answered (" + errno.Error() + ")",
				unavailable: true}
		}
	}
	return &callError{msg: err.Error()}
}

// percentDecode undoes grpc-message's percent-encoding; a malformed escape stays as it is.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, okHi := unhex(s[i+1])
			lo, okLo := unhex(s[i+2])
			if okHi && okLo {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// asCNIError turns a failed call into the error the runtime gets.
func asCNIError(err error, server string) *cniError {
	var ce *callError
	if errors.As(err, &ce) && ce.unavailable {
		return &cniError{Code: codeTryAgainLater,
			Msg: fmt.Sprintf("the contiv agent at %s is not reachable: %s", server, ce.msg)}
	}
	return &cniError{Code: codeInternal, Msg: fmt.Sprintf("the contiv agent at %s failed the call: %v", server, err)}
}
