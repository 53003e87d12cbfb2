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
// Standard library only (net/http speaks gRPC's HTTP/2 with prior knowledge), built static
// (CGO_ENABLED=0): it runs on any Linux node, with no interpreter or library there.
package main

import (
	"fmt"
	"io"
	"os"
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
