package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// netConf holds the few keys of the network configuration that the binary itself needs.
type netConf struct {
	version string // cniVersion as given ("" when absent or not a string)
	server  string // grpcServer (default: the agent's default socket)
	logFile string
}

// requestedVersion is the cniVersion to answer in: the one asked for when it is supported.
func (c *netConf) requestedVersion() string {
	if c != nil {
		for _, v := range supportedVersions {
			if c.version == v {
				return v
			}
		}
	}
	return latestVersion
}

// parseConfig reads the keys the binary needs from stdin. It always returns a netConf (with
// what could be read) so that errors can still be logged and answered in the right version.
func parseConfig(stdin []byte) (*netConf, *cniError) {
	conf := &netConf{server: defaultServer}
	if !utf8.Valid(stdin) {
		return conf, &cniError{Code: codeDecodeFailure, Msg: "network configuration on stdin is not valid UTF-8"}
	}
	trimmed := bytes.TrimSpace(stdin)
	var keys struct {
		CNIVersion json.RawMessage `json:"cniVersion"`
		GRPCServer json.RawMessage `json:"grpcServer"`
		LogFile    json.RawMessage `json:"logFile"`
	}
	if err := json.Unmarshal(trimmed, &keys); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return conf, &cniError{Code: codeDecodeFailure, Msg: "network configuration must be a JSON object"}
		}
		return conf, &cniError{Code: codeDecodeFailure,
			Msg: fmt.Sprintf("network configuration on stdin is not valid JSON: %v", err)}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' { // "null" decodes into the struct without error
		return conf, &cniError{Code: codeDecodeFailure, Msg: "network configuration must be a JSON object"}
	}
	var s string
	if json.Unmarshal(keys.CNIVersion, &s) == nil {
		conf.version = s
	}
	if json.Unmarshal(keys.LogFile, &s) == nil {
		conf.logFile = s
	}
	if keys.GRPCServer != nil && string(keys.GRPCServer) != "null" {
		var server string
		if json.Unmarshal(keys.GRPCServer, &server) != nil || server == "" {
			return conf, &cniError{Code: codeInvalidNetworkConfig,
				Msg: fmt.Sprintf("grpcServer must be a socket path or host:port, got %s", keys.GRPCServer)}
		}
		conf.server = server
	}
	return conf, nil
}

func versionDoc(version string) any {
	return struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}{version, supportedVersions}
}

func errorDoc(err *cniError, version string) any {
	return struct {
		CNIVersion string `json:"cniVersion"`
		Code       uint32 `json:"code"`
		Msg        string `json:"msg"`
		Details    string `json:"details,omitempty"`
	}{version, err.Code, err.Msg, err.Details}
}

func writeJSON(out io.Writer, doc any) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}

// quote writes a value the way the agent's messages do (Python's repr of a plain string).
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

func validUTF8(s string) bool { return utf8.ValidString(s) }
