package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// callError is a failed gRPC call; unavailable means the agent is not there (try again later).
type callError struct {
	msg         string
	unavailable bool
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
	if strings.HasPrefix(server, "/") {
		if _, err := os.Stat(server); err != nil {
			return nil, &callError{msg: "the socket does not exist", unavailable: true}
		}
	}
	transport := &http.Transport{DisableCompression: true}
	transport.Protocols = new(http.Protocols)
	transport.Protocols.SetUnencryptedHTTP2(true)
	authority := server
	if strings.HasPrefix(server, "/") {
		authority = "localhost"
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", server)
		}
	}
	defer transport.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	body := make([]byte, 5+len(request)) // gRPC's length-prefixed message, uncompressed
	binary.BigEndian.PutUint32(body[1:5], uint32(len(request)))
	copy(body[5:], request)
	path := "/contiv.cni.RemoteCNI/" + method
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+authority+path, bytes.NewReader(body))
	if err != nil {
		return nil, &callError{msg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", strconv.FormatInt(timeout.Milliseconds(), 10)+"m")

	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return nil, transportError(ctx, err, timeout)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, transportError(ctx, err, timeout)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &callError{msg: fmt.Sprintf("HTTP status %d from %s", resp.StatusCode, path)}
	}
	status := resp.Trailer.Get("Grpc-Status")
	message := resp.Trailer.Get("Grpc-Message")
	if status == "" { // a "trailers-only" answer: the status is in the headers
		status = resp.Header.Get("Grpc-Status")
		message = resp.Header.Get("Grpc-Message")
	}
	if status != "0" {
		code, convErr := strconv.Atoi(status)
		if convErr != nil {
			return nil, &callError{msg: fmt.Sprintf("no gRPC status in the answer to %s", path)}
		}
		if decoded, err := url.PathUnescape(message); err == nil {
			message = decoded
		}
		name := "?"
		if code >= 0 && code < len(grpcCodes) {
			name = grpcCodes[code]
		}
		return nil, &callError{msg: fmt.Sprintf("gRPC status %d (%s): %s", code, name, message),
			unavailable: code == grpcUnavailable}
	}
	if len(data) < 5 || data[0] != 0 {
		return nil, &callError{msg: "the answer holds no uncompressed gRPC message"}
	}
	size := binary.BigEndian.Uint32(data[1:5])
	if uint64(size) != uint64(len(data)-5) {
		return nil, &callError{msg: fmt.Sprintf("the answer's message is %d bytes, announced %d", len(data)-5, size)}
	}
	return data[5:], nil
}

// transportError classifies a failed exchange: nobody listening or no answer in time is
// "unavailable" (the agent is restarting or stuck), anything else an error of the call.
func transportError(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &callError{msg: fmt.Sprintf("no answer within %s", timeout), unavailable: true}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return &callError{msg: opErr.Err.Error(), unavailable: true}
	}
	return &callError{msg: err.Error(), unavailable: errors.Is(err, io.ErrUnexpectedEOF)}
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
