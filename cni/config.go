package main

import (
	"io"
	"strconv"
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
	members, err := scanJSON(stdin)
	if err != nil {
		return conf, &cniError{Code: codeDecodeFailure,
			Msg: "network configuration on stdin is not valid JSON: " + err.Error()}
	}
	if members == nil {
		return conf, &cniError{Code: codeDecodeFailure, Msg: "network configuration must be a JSON object"}
	}
	if m := members["cniVersion"]; m.isString {
		conf.version = m.str
	}
	if m := members["logFile"]; m.isString {
		conf.logFile = m.str
	}
	if m, ok := members["grpcServer"]; ok && m.raw != "null" {
		if !m.isString || m.str == "" {
			return conf, &cniError{Code: codeInvalidNetworkConfig,
				Msg: "grpcServer must be a socket path or host:port, got " + m.raw}
		}
		conf.server = m.str
	}
	return conf, nil
}

// versionDoc is the VERSION answer.
func versionDoc(version string) []byte {
	b := append([]byte(`{"cniVersion":`), appendJSONString(nil, version)...)
	b = append(b, `,"supportedVersions":[`...)
	for i, v := range supportedVersions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, "]}\n"...)
}

// errorDoc is the specification's error document.
func errorDoc(err *cniError, version string) []byte {
	b := append([]byte(`{"cniVersion":`), appendJSONString(nil, version)...)
	b = append(b, `,"code":`...)
	b = strconv.AppendUint(b, uint64(err.Code), 10)
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, err.Msg)
	if err.Details != "" {
		b = append(b, `,"details":`...)
		b = appendJSONString(b, err.Details)
	}
	return append(b, "}\n"...)
}

func writeJSON(out io.Writer, doc []byte) {
	_, _ = out.Write(doc)
}

// quote writes a value the way the agent's messages do (Python's repr of a plain string).
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

func validUTF8(s string) bool { return utf8.ValidString(s) }
