package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var notRunning = &callError{msg: "the socket does not exist", unavailable: true, notRunning: true}

// agentCalls answers the calls in turn with the given errors (nil: an empty success reply)
// and records the requests.
func agentCalls(errs ...error) (caller, *[][]byte) {
	var seen [][]byte
	return func(_, _ string, req []byte, _ time.Duration) ([]byte, error) {
		seen = append(seen, req)
		err := errs[0]
		errs = errs[1:]
		if err != nil {
			return nil, err
		}
		return encodeReply(0, "", "", ""), nil
	}, &seen
}

func delEnv(id string) map[string]string {
	return map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": id, "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
}

// queueDir makes the directory an agent makes when it starts.
func queueDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, queueDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDelWithoutAgentIsQueuedForItsStart(t *testing.T) {
	dir := queueDir(t)
	log := filepath.Join(dir, "cni.log")
	stdin := `{"cniVersion": "1.0.0", "grpcServer": "` + dir + `/agent.sock", "logFile": "` + log + `"}`
	call, seen := agentCalls(notRunning, notRunning)
	res := runWith(t, delEnv("c-1.a_b"), stdin, call)
	if res.status != 0 || res.raw != "" {
		t.Fatalf("status %d, stdout %q", res.status, res.raw)
	}
	queued, err := os.ReadFile(filepath.Join(dir, queueDirName, "c-1.a_b.del"))
	if err != nil || len(*seen) != 2 || !bytes.Equal(queued, (*seen)[0]) {
		t.Fatalf("queued %q (%v), requests %d", queued, err, len(*seen))
	}
	if f := fields(t, queued); f[2] != "c-1.a_b" || f[5] != stdin || f[10] != "1" {
		t.Errorf("queued request %v", f)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, queueDirName)); len(entries) != 1 {
		t.Errorf("queue dir: %d entries", len(entries))
	}
	if info, _ := os.Stat(filepath.Join(dir, queueDirName, "c-1.a_b.del")); info.Mode().Perm() != 0o600 {
		t.Errorf("queued file mode %v", info.Mode())
	}
	line, _ := os.ReadFile(log)
	if !strings.Contains(string(line), "DEL c-1.a_b queued for the agent's start (the socket does not exist)") {
		t.Errorf("log %q", line)
	}
}

// An agent that started between the failed call and the queueing may have read the queue
// already: the binary asks once more and that agent's answer counts.
func TestDelQueuedButAnsweredByAnAgentThatJustStarted(t *testing.T) {
	dir := queueDir(t)
	call, seen := agentCalls(notRunning, &callError{msg: "gRPC status 13 (INTERNAL): boom"})
	res := runWith(t, delEnv("c2"), `{"cniVersion": "1.0.0", "grpcServer": "`+dir+`/agent.sock"}`, call)
	if res.status != 1 || res.doc["code"] != 999.0 || len(*seen) != 2 {
		t.Errorf("%d %v after %d calls", res.status, res.doc, len(*seen))
	}
	call, _ = agentCalls(notRunning, nil)
	if res = runWith(t, delEnv("c3"), `{"cniVersion": "1.0.0", "grpcServer": "`+dir+`/agent.sock"}`, call); res.status != 0 {
		t.Errorf("%d %v", res.status, res.doc)
	}
}

func TestDelIsTryAgainLaterWhenItCannotBeQueuedOrTheOutcomeIsUnknown(t *testing.T) {
	dir := queueDir(t)
	readOnly := filepath.Join(dir, "ro")
	os.Mkdir(readOnly, 0o700)
	os.Mkdir(filepath.Join(readOnly, queueDirName), 0o500)
	neverRan := t.TempDir()
	cases := []struct {
		name, id, server string
		err              error
		msg              string
	}{
		{"invalid container ID", "../x", dir + "/agent.sock", notRunning, "CNI_CONTAINERID '../x' is not a valid container ID"},
		{"TCP agent", "c1", "127.0.0.1:1", notRunning, "the agent is not on a unix socket"},
		{"no socket directory", "c1", dir + "/absent/agent.sock", notRunning, "could not be queued"},
		{"no agent ran there", "c1", neverRan + "/agent.sock", notRunning, "no agent ran on this socket since the node booted"},
		{"no answer in time", "c1", dir + "/agent.sock", &callError{msg: "no answer within 90s", unavailable: true}, "no answer within 90s"},
		{"connection lost", "c1", dir + "/agent.sock", &callError{msg: "closed", unavailable: true}, "closed"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name, id, server string
			err              error
			msg              string
		}{"read-only directory", "c1", readOnly + "/agent.sock", notRunning, "permission denied"})
	}
	for _, c := range cases {
		call, seen := agentCalls(c.err, c.err)
		res := runWith(t, delEnv(c.id), `{"cniVersion": "1.0.0", "grpcServer": "`+c.server+`"}`, call)
		if res.status != 1 || res.doc["code"] != 11.0 || !strings.Contains(res.doc["msg"].(string), c.msg) || len(*seen) != 1 {
			t.Errorf("%s: %d %v after %d calls", c.name, res.status, res.doc, len(*seen))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, queueDirName, "c1.del")); err == nil {
		t.Error("a DEL whose outcome is unknown was queued")
	}
	if _, err := os.Stat(filepath.Join(neverRan, queueDirName)); err == nil {
		t.Error("the binary made the queue directory")
	}
	// ADD and CHECK are never queued.
	for _, command := range []string{"ADD", "CHECK"} {
		env := delEnv("c4")
		env["CNI_COMMAND"] = command
		call, _ := agentCalls(notRunning)
		if res := runWith(t, env, `{"cniVersion": "1.0.0", "grpcServer": "`+dir+`/agent.sock"}`, call); res.doc["code"] != 11.0 {
			t.Errorf("%s: %v", command, res.doc)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, queueDirName, "c4.del")); err == nil {
		t.Error("ADD or CHECK was queued")
	}
}

// grpcCall tells "nobody runs behind the socket" (missing socket, refused connection) from
// an agent that does not answer.
func TestGRPCCallTellsANotRunningAgent(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	listener, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	listener.(*net.UnixListener).SetUnlinkOnClose(false)
	listener.Close()
	silent := filepath.Join(dir, "silent.sock")
	quiet, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	for path, want := range map[string]bool{filepath.Join(dir, "none.sock"): true, stale: true, silent: false} {
		_, err := grpcCall(path, "Delete", nil, 200*time.Millisecond)
		if agentNotRunning(err) != want {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}
