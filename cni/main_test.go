package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fields decodes a protobuf message's length-delimited and varint fields (test helper).
func fields(t *testing.T, msg []byte) map[int]string {
	t.Helper()
	out := map[int]string{}
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		msg = msg[n:]
		switch key & 7 {
		case 0:
			v, n := binary.Uvarint(msg)
			msg = msg[n:]
			out[int(key>>3)] = string(rune('0' + v))
		case 2:
			size, n := binary.Uvarint(msg)
			out[int(key>>3)] = string(msg[n : n+int(size)])
			msg = msg[n+int(size):]
		default:
			t.Fatalf("unexpected wire type %d", key&7)
		}
	}
	return out
}

func encodeReply(result uint32, errMsg, details, output string) []byte {
	var b []byte
	if result != 0 {
		b = appendKey(b, 1, 0)
		b = binary.AppendUvarint(b, uint64(result))
	}
	b = appendString(b, 2, errMsg)
	// A structured interface (field 4) that the binary skips, and a fixed32/fixed64 field.
	b = appendString(b, 4, string(appendString(nil, 1, "eth0")))
	b = append(appendKey(b, 14, 1), 1, 2, 3, 4, 5, 6, 7, 8)
	b = append(appendKey(b, 13, 5), 1, 2, 3, 4)
	b = appendString(b, 7, details)
	return appendString(b, 8, output)
}

type outcome struct {
	status int
	doc    map[string]any
	raw    string
}

func runWith(t *testing.T, env map[string]string, stdin string, call caller) outcome {
	t.Helper()
	var out bytes.Buffer
	inv := invocation{
		getenv: func(k string) string { return env[k] }, stdin: []byte(stdin), stdout: &out,
		call: call, now: func() time.Time { return time.Unix(0, 0).UTC() }, pid: 42,
	}
	status := inv.run()
	res := outcome{status: status, raw: out.String()}
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &res.doc); err != nil {
			t.Fatalf("stdout is not JSON: %q", out.String())
		}
	}
	return res
}

func noCall(t *testing.T) caller {
	return func(string, string, []byte, time.Duration) ([]byte, error) {
		t.Fatal("the agent was called")
		return nil, nil
	}
}

var podEnv = map[string]string{
	"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/p",
	"CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "K8S_POD_NAME=web;K8S_POD_NAMESPACE=default",
}

func TestVersionIsAnsweredWithoutTheAgent(t *testing.T) {
	for stdin, want := range map[string]string{
		`{"cniVersion": "0.4.0"}`: "0.4.0", ``: "1.0.0", `{"cniVersion": "9.9"}`: "1.0.0", `{bad`: "1.0.0",
	} {
		res := runWith(t, map[string]string{"CNI_COMMAND": "VERSION"}, stdin, noCall(t))
		if res.status != 0 || res.doc["cniVersion"] != want {
			t.Errorf("stdin %q: status %d, %v", stdin, res.status, res.doc)
		}
		versions, _ := json.Marshal(res.doc["supportedVersions"])
		if string(versions) != `["0.3.1","0.4.0","1.0.0"]` {
			t.Errorf("supportedVersions %s", versions)
		}
	}
}

func TestWhatStopsTheCallIsReportedLocally(t *testing.T) {
	cases := []struct {
		name    string
		command string
		stdin   string
		code    float64
		msg     string
	}{
		{"no command", "", `{}`, 4, "CNI_COMMAND is not set"},
		{"unknown command", "UPDATE", `{}`, 4, "CNI_COMMAND 'UPDATE' is not one of ADD, DEL, CHECK, VERSION"},
		{"bad json", "ADD", `{not json`, 6, "not valid JSON"},
		{"array", "ADD", `[1, 2]`, 6, "must be a JSON object"},
		{"null", "DEL", `null`, 6, "must be a JSON object"},
		{"empty", "DEL", ``, 6, "not valid JSON"},
		{"invalid utf-8", "ADD", "{\"name\": \"\xff\"}", 6, "not valid UTF-8"},
		{"bad grpcServer", "ADD", `{"cniVersion": "0.3.1", "grpcServer": 5}`, 7, "grpcServer must be a socket path or host:port, got 5"},
		{"empty grpcServer", "ADD", `{"grpcServer": ""}`, 7, "grpcServer"},
	}
	for _, c := range cases {
		env := map[string]string{"CNI_COMMAND": c.command}
		res := runWith(t, env, c.stdin, noCall(t))
		if res.status != 1 || res.doc["code"] != c.code || !strings.Contains(res.doc["msg"].(string), c.msg) {
			t.Errorf("%s: status %d, %v", c.name, res.status, res.doc)
		}
	}
	// The error is in the requested version when it is one we speak.
	res := runWith(t, map[string]string{"CNI_COMMAND": "ADD"}, `{"cniVersion": "0.3.1", "grpcServer": 5}`, noCall(t))
	if res.doc["cniVersion"] != "0.3.1" {
		t.Errorf("error version %v", res.doc["cniVersion"])
	}
}

func TestInvalidUTF8InTheEnvironmentIsNamed(t *testing.T) {
	env := map[string]string{}
	for k, v := range podEnv {
		env[k] = v
	}
	env["CNI_ARGS"] = "K8S_POD_NAME=\xff"
	res := runWith(t, env, `{"cniVersion": "1.0.0"}`, noCall(t))
	if res.doc["code"] != 4.0 || res.doc["msg"] != "environment variable CNI_ARGS is not valid UTF-8" {
		t.Errorf("%v", res.doc)
	}
}

func TestTheInvocationGoesToTheAgentUntouchedAndItsOutputIsPrinted(t *testing.T) {
	stdin := `{"cniVersion": "0.4.0", "name": "n", "grpcServer": "/run/x.sock"}`
	var gotServer, gotMethod string
	var request map[int]string
	call := func(server, method string, req []byte, timeout time.Duration) ([]byte, error) {
		gotServer, gotMethod, request = server, method, fields(t, req)
		if timeout != callTimeout {
			t.Errorf("timeout %s", timeout)
		}
		return encodeReply(0, "", "", `{"cniVersion":"0.4.0","ips":[]}`), nil
	}
	res := runWith(t, podEnv, stdin, call)
	if res.status != 0 || res.raw != `{"cniVersion":"0.4.0","ips":[]}` {
		t.Fatalf("status %d, stdout %q", res.status, res.raw)
	}
	want := map[int]string{1: "0.4.0", 2: "c1", 3: "/var/run/netns/p", 4: "eth0", 5: stdin,
		6: podEnv["CNI_ARGS"], 9: "/opt/cni/bin", 10: "1"}
	if gotServer != "/run/x.sock" || gotMethod != "Add" || len(request) != len(want) {
		t.Fatalf("call %s %s %v", gotServer, gotMethod, request)
	}
	for k, v := range want {
		if request[k] != v {
			t.Errorf("field %d: %q, want %q", k, request[k], v)
		}
	}
	for command, method := range map[string]string{"DEL": "Delete", "CHECK": "Check"} {
		env := map[string]string{"CNI_COMMAND": command}
		res := runWith(t, env, `{}`, call)
		if gotMethod != method || gotServer != defaultServer || res.status != 0 {
			t.Errorf("%s: %s at %s, status %d", command, gotMethod, gotServer, res.status)
		}
	}
}

func TestAgentErrorsExitWithOne(t *testing.T) {
	withOutput := func(string, string, []byte, time.Duration) ([]byte, error) {
		return encodeReply(100, "no free IP", "", `{"cniVersion":"1.0.0","code":100,"msg":"no free IP"}`), nil
	}
	res := runWith(t, podEnv, `{"cniVersion": "1.0.0"}`, withOutput)
	if res.status != 1 || res.doc["code"] != 100.0 || res.doc["msg"] != "no free IP" {
		t.Errorf("%d %v", res.status, res.doc)
	}
	// An agent that sends no output still gets its error to the runtime.
	bare := func(string, string, []byte, time.Duration) ([]byte, error) {
		return encodeReply(102, "unwiring failed", "veth busy", ""), nil
	}
	res = runWith(t, podEnv, `{"cniVersion": "0.4.0"}`, bare)
	if res.status != 1 || res.doc["code"] != 102.0 || res.doc["details"] != "veth busy" || res.doc["cniVersion"] != "0.4.0" {
		t.Errorf("%d %v", res.status, res.doc)
	}
}

func TestCallFailures(t *testing.T) {
	cases := []struct {
		err  error
		code float64
		msg  string
	}{
		{&callError{msg: "the socket does not exist", unavailable: true}, 11,
			"the contiv agent at /run/x.sock is not reachable: the socket does not exist"},
		{&callError{msg: "gRPC status 8 (RESOURCE_EXHAUSTED): full"}, 999,
			"the contiv agent at /run/x.sock failed the call: gRPC status 8 (RESOURCE_EXHAUSTED): full"},
		{errors.New("boom"), 999, "failed the call: boom"},
	}
	for _, c := range cases {
		call := func(string, string, []byte, time.Duration) ([]byte, error) { return nil, c.err }
		res := runWith(t, podEnv, `{"cniVersion": "1.0.0", "grpcServer": "/run/x.sock"}`, call)
		if res.status != 1 || res.doc["code"] != c.code || !strings.Contains(res.doc["msg"].(string), c.msg) {
			t.Errorf("%v: %v", c.err, res.doc)
		}
	}
	garbage := func(string, string, []byte, time.Duration) ([]byte, error) { return []byte{0x0a, 0x05, 'a'}, nil }
	res := runWith(t, podEnv, `{"cniVersion": "1.0.0"}`, garbage)
	if res.doc["code"] != 999.0 || !strings.Contains(res.doc["msg"].(string), "bad reply") {
		t.Errorf("%v", res.doc)
	}
}

func TestLogFileGetsOneLinePerCall(t *testing.T) {
	log := filepath.Join(t.TempDir(), "cni.log")
	stdin := `{"cniVersion": "1.0.0", "logFile": "` + log + `"}`
	ok := func(string, string, []byte, time.Duration) ([]byte, error) { return encodeReply(0, "", "", ""), nil }
	failing := func(string, string, []byte, time.Duration) ([]byte, error) {
		return encodeReply(4, "CNI_IFNAME 'x/y' is not a valid name", "", ""), nil
	}
	runWith(t, podEnv, stdin, ok)
	runWith(t, podEnv, stdin, failing)
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "1970-01-01T00:00:00 pid=42 ADD c1 ok\n" +
		"1970-01-01T00:00:00 pid=42 ADD c1 failed: [4] CNI_IFNAME 'x/y' is not a valid name\n"
	if string(data) != want {
		t.Errorf("log %q", data)
	}
}

func TestDecodeReplyRejectsTruncation(t *testing.T) {
	for _, data := range [][]byte{{0x12, 10, 'a'}, {0x08, 0x80}, {0x71, 1, 2}, {0x0b}} {
		if _, err := decodeReply(data); err == nil {
			t.Errorf("%v decoded", data)
		}
	}
	r, err := decodeReply(encodeReply(7, "e", "d", "o"))
	if err != nil || r.result != 7 || r.error != "e" || r.errorDetails != "d" || r.output != "o" {
		t.Errorf("%+v %v", r, err)
	}
}

// grpcServer serves one handler with unencrypted HTTP/2 on a unix socket.
func grpcServer(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	listener, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: handler, Protocols: new(http.Protocols)}
	server.Protocols.SetUnencryptedHTTP2(true)
	go server.Serve(listener)
	t.Cleanup(func() { server.Close() })
	return path
}

func TestGRPCCallOverHTTP2(t *testing.T) {
	var seen *http.Request
	var body []byte
	path := grpcServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen = r
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		msg := encodeReply(0, "", "", "hi")
		w.Write(append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...))
		w.Header().Set("Grpc-Status", "0")
	})
	raw, err := grpcCall(path, "Add", []byte("request"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := decodeReply(raw); r.output != "hi" {
		t.Errorf("reply %q", raw)
	}
	if seen.ProtoMajor != 2 || seen.URL.Path != "/contiv.cni.RemoteCNI/Add" ||
		seen.Header.Get("Content-Type") != "application/grpc" || seen.Header.Get("Te") != "trailers" {
		t.Errorf("request %s %s %v", seen.Proto, seen.URL.Path, seen.Header)
	}
	if !bytes.Equal(body, append([]byte{0, 0, 0, 0, 7}, "request"...)) {
		t.Errorf("body %q", body)
	}
}

func TestGRPCStatusFromTrailersAndHeaders(t *testing.T) {
	trailers := grpcServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(http.StatusOK)
		w.Header().Set("Grpc-Status", "8")
		w.Header().Set("Grpc-Message", "no free IP (100%25 used, caf%C3%A9)")
	})
	_, err := grpcCall(trailers, "Add", nil, 5*time.Second)
	var ce *callError
	if !errors.As(err, &ce) || ce.unavailable || ce.msg != "gRPC status 8 (RESOURCE_EXHAUSTED): no free IP (100% used, café)" {
		t.Errorf("%v", err)
	}
	headersOnly := grpcServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", "shutting down")
		w.WriteHeader(http.StatusOK)
	})
	_, err = grpcCall(headersOnly, "Add", nil, 5*time.Second)
	if !errors.As(err, &ce) || !ce.unavailable || !strings.Contains(ce.msg, "14 (UNAVAILABLE): shutting down") {
		t.Errorf("%v", err)
	}
}

func TestUnreachableAgentIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	_, err := grpcCall(filepath.Join(dir, "none.sock"), "Add", nil, time.Second)
	var ce *callError
	if !errors.As(err, &ce) || !ce.unavailable || ce.msg != "the socket does not exist" {
		t.Errorf("missing: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock") // what a killed agent leaves
	listener, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	listener.(*net.UnixListener).SetUnlinkOnClose(false)
	listener.Close()
	_, err = grpcCall(stale, "Add", nil, time.Second)
	if !errors.As(err, &ce) || !ce.unavailable {
		t.Errorf("stale: %v", err)
	}
	silent := filepath.Join(dir, "silent.sock") // accepts, never answers
	quiet, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	_, err = grpcCall(silent, "Add", nil, 300*time.Millisecond)
	if !errors.As(err, &ce) || !ce.unavailable || !strings.Contains(ce.msg, "no answer within 300ms") {
		t.Errorf("silent: %v", err)
	}
}
