// Command contiv-cni is the CNI plugin that a container runtime executes for every pod sandbox.
//
// It is as thin as the CNI specification allows: it answers VERSION itself, and forwards ADD,
// DEL and CHECK (the CNI_* environment and the network configuration from stdin, untouched)
// in one gRPC call to the node's contiv agent, whose pod manager checks the invocation against
// the specification, wires the pod and answers the document to print (the result in the
// layout of the requested cniVersion, or the specification's error JSON). The binary reports
// on its own only what stops it from reaching the agent: no command, stdin that is not a JSON
// object, a bad grpcServer, an agent that is not reachable (code 11, try again later).
//
// Standard library only (the HTTP/2 of the call and the JSON it reads are its own, h2.go and
// jsonlite.go: cheaper per exec than net/http and encoding/json), built static
// (CGO_ENABLED=0): it runs on any Linux node, with no interpreter or library there.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

const (
	defaultServer = "/var/run/contiv/cni.sock"
	latestVersion = "1.0.0"
	// callTimeout bounds the wait for the agent (above the agent's own 60 s event timeout).
	callTimeout = 90 * time.Second
)

// Error codes of the CNI specification that the binary reports itself.
const (
	codeInvalidEnvironment   = 4
	codeDecodeFailure        = 6
	codeInvalidNetworkConfig = 7
	codeTryAgainLater        = 11
	codeInternal             = 999
)

var supportedVersions = []string{"0.3.1", "0.4.0", "1.0.0"}

// methods maps CNI commands to the RemoteCNI methods.
var methods = map[string]string{"ADD": "Add", "DEL": "Delete", "CHECK": "Check"}

// cniError is a failure reported as the specification's error JSON.
type cniError struct {
	Code    uint32
	Msg     string
	Details string
}

func (e *cniError) Error() string {
	if e.Details != "" {
		return fmt.Sprintf("[%d] %s (%s)", e.Code, e.Msg, e.Details)
	}
	return fmt.Sprintf("[%d] %s", e.Code, e.Msg)
}

// caller makes the one gRPC call; tests replace it.
type caller func(server, method string, request []byte, timeout time.Duration) ([]byte, error)

// invocation is what run needs from the process: environment, stdin, stdout, the agent call.
type invocation struct {
	getenv func(string) string
	stdin  []byte
	stdout io.Writer
	call   caller
	now    func() time.Time
	pid    int
}

func main() {
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		stdin = nil
	}
	inv := invocation{
		getenv: os.Getenv, stdin: stdin, stdout: os.Stdout, call: grpcCall,
		now: time.Now, pid: os.Getpid(),
	}
	os.Exit(inv.run())
}

// run executes one CNI command and returns the exit status (0, or 1 after an error JSON).
func (inv *invocation) run() int {
	command := inv.getenv("CNI_COMMAND")
	conf, confErr := parseConfig(inv.stdin)
	version := conf.requestedVersion()
	if command == "VERSION" {
		writeJSON(inv.stdout, versionDoc(version))
		return 0
	}
	fail := func(err *cniError) int {
		inv.log(conf, fmt.Sprintf("%s %s failed: %s", command, inv.getenv("CNI_CONTAINERID"), err))
		writeJSON(inv.stdout, errorDoc(err, version))
		return 1
	}
	method, ok := methods[command]
	if !ok {
		if command == "" {
			return fail(&cniError{Code: codeInvalidEnvironment, Msg: "environment variable CNI_COMMAND is not set"})
		}
		return fail(&cniError{Code: codeInvalidEnvironment,
			Msg: fmt.Sprintf("CNI_COMMAND %s is not one of ADD, DEL, CHECK, VERSION", quote(command))})
	}
	if confErr != nil {
		return fail(confErr)
	}
	request, err := inv.request(conf)
	if err != nil {
		return fail(err)
	}
	raw, callErr := inv.call(conf.server, method, request, callTimeout)
	if command == "DEL" && agentNotRunning(callErr) {
		raw, callErr = inv.deleteWithoutAgent(conf, request, callErr)
		if callErr == nil && raw == nil {
			return 0
		}
	}
	if callErr != nil {
		return fail(asCNIError(callErr, conf.server))
	}
	reply, decodeErr := decodeReply(raw)
	if decodeErr != nil {
		return fail(&cniError{Code: codeInternal,
			Msg: fmt.Sprintf("bad reply from the contiv agent at %s: %v", conf.server, decodeErr)})
	}
	if reply.result != 0 {
		err := &cniError{Code: reply.result, Msg: reply.error, Details: reply.errorDetails}
		inv.log(conf, fmt.Sprintf("%s %s failed: %s", command, inv.getenv("CNI_CONTAINERID"), err))
		if reply.output != "" {
			io.WriteString(inv.stdout, reply.output)
		} else {
			writeJSON(inv.stdout, errorDoc(err, version))
		}
		return 1
	}
	inv.log(conf, fmt.Sprintf("%s %s ok", command, inv.getenv("CNI_CONTAINERID")))
	io.WriteString(inv.stdout, reply.output)
	return 0
}

// request encodes the CNIRequest: the invocation as the runtime gave it.
func (inv *invocation) request(conf *netConf) ([]byte, *cniError) {
	fields := []struct {
		number int
		env    string
	}{
		{2, "CNI_CONTAINERID"}, {3, "CNI_NETNS"}, {4, "CNI_IFNAME"}, {6, "CNI_ARGS"}, {9, "CNI_PATH"},
	}
	msg := appendString(nil, 1, conf.version)
	for _, f := range fields {
		value := inv.getenv(f.env)
		if !validUTF8(value) {
			return nil, &cniError{Code: codeInvalidEnvironment,
				Msg: fmt.Sprintf("environment variable %s is not valid UTF-8", f.env)}
		}
		msg = appendString(msg, f.number, value)
	}
	msg = appendBytes(msg, 5, inv.stdin)
	msg = appendBool(msg, 10, true) // cni_invocation: check it against the specification
	return msg, nil
}

// log appends one line to the configuration's logFile (best effort: it never fails a call).
func (inv *invocation) log(conf *netConf, line string) {
	if conf == nil || conf.logFile == "" {
		return
	}
	out, err := os.OpenFile(conf.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer out.Close()
	fmt.Fprintf(out, "%s pid=%d %s\n", inv.now().Format("2006-01-02T15:04:05"), inv.pid, line)
}

// queueDirName is the directory, next to the agent's socket, where DELs wait for an agent
// that is not running (plugins/podmanager reads it at start).
const queueDirName = "pending-del"

func agentNotRunning(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && ce.notRunning
}

// deleteWithoutAgent handles a DEL when no agent runs behind the socket: it queues the
// request for the agent's next start and succeeds, as the specification asks of DEL (the
// agent runs it before anything else it does to pods), or answers 11 when it cannot be
// queued. It tries the agent once more after queueing, because an agent that started in
// between may have read the queue before the request was in it; when that agent answers, its
// reply counts (nil raw and error: queued).
func (inv *invocation) deleteWithoutAgent(conf *netConf, request []byte, callErr error) ([]byte, error) {
	if err := inv.queueDelete(conf.server, request); err != nil {
		return nil, &callError{msg: fmt.Sprintf("%v, and the DEL could not be queued for its start: %v", callErr, err),
			unavailable: true}
	}
	raw, err := inv.call(conf.server, "Delete", request, callTimeout)
	if agentNotRunning(err) {
		inv.log(conf, fmt.Sprintf("DEL %s queued for the agent's start (%v)", inv.getenv("CNI_CONTAINERID"), callErr))
		return nil, nil
	}
	return raw, err
}

// queueDelete writes the request as <socket dir>/pending-del/<container ID>.del (temporary
// file and rename: the agent never reads half a request). It never creates directories.
func (inv *invocation) queueDelete(server string, request []byte) error {
	if len(server) == 0 || server[0] != '/' {
		return errors.New("the agent is not on a unix socket")
	}
	id := inv.getenv("CNI_CONTAINERID")
	if !validContainerID(id) {
		return fmt.Errorf("CNI_CONTAINERID %s is not a valid container ID", quote(id))
	}
	// The agent makes the directory when it starts: without it no agent ran on this socket
	// since the node booted, and whether one will (and what it holds) is unknown.
	dir := filepath.Join(filepath.Dir(server), queueDirName)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("%s is missing: no agent ran on this socket since the node booted", dir)
	}
	tmp := filepath.Join(dir, "."+id+".tmp")
	if err := os.WriteFile(tmp, request, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, id+".del"))
}

// validContainerID follows the specification: alphanumerics, hyphen, underscore, period,
// starting with an alphanumeric (so it is a plain file name).
func validContainerID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return id != "" && len(id) <= 255-len(".del")
}
