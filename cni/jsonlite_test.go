package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The scanner accepts exactly what encoding/json accepts.
func TestScanJSONAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, ` { } `, `[]`, `[1,2]`, `"x"`, `0`, `-0`, `-1.5e+10`, `1E-2`, `true`, `false`, `null`,
		`{"a":{"b":[1,{"c":null}]},"d":"\u00e9\ud83d\ude00\n\"\\\/"}`, `{"a":1,"a":2}`,
		"\t\r\n{\"k\" : [ true , false ] }\n",
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `[1,]`, `[,1]`, `{"a":1 "b":2}`,
		`{a:1}`, `{'a':1}`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`, `0x10`, `tru`, `nul`, `True`,
		`"\x"`, `"\u12"`, `"\u12G4"`, "\"a\tb\"", `"abc`, `"\`, `{} {}`, `{}x`, `[1] 2`,
		`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, strings.Repeat("[", 100) + strings.Repeat("]", 100),
		strings.Repeat("[", 10002) + strings.Repeat("]", 10002),
	}
	for _, in := range inputs {
		_, err := scanJSON([]byte(in))
		if want := json.Valid([]byte(in)); (err == nil) != want {
			t.Errorf("%.40q: scanner error %v, encoding/json valid %v", in, err, want)
		}
	}
}

func TestScanJSONTopLevelMembers(t *testing.T) {
	in := `{"cniVersion": "1.0.0", "grpcServer": 5, "logFile": "\/var\/log\/x\u00e9\ud83d\ude00",
		"cniVersion": "0.4.0", "nested": {"grpcServer": "inner"}, "n": null, "s": "\ud800x"}`
	members, err := scanJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	json.Unmarshal([]byte(in), &want)
	if len(members) != len(want) {
		t.Fatalf("%v", members)
	}
	for name, value := range want {
		m := members[name]
		if s, ok := value.(string); ok != m.isString || ok && s != m.str {
			t.Errorf("%s: %+v, encoding/json %q", name, m, value)
		}
	}
	if members["grpcServer"].raw != "5" || members["n"].raw != "null" || members["nested"].raw != `{"grpcServer": "inner"}` {
		t.Errorf("raw %+v", members)
	}
	if m, _ := scanJSON([]byte(`[{"a": "b"}]`)); m != nil {
		t.Errorf("an array gave members %v", m)
	}
}

// The documents the binary prints are encoded as encoding/json (without HTML escaping) would.
func TestJSONStringEncodingAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "\n\r\t\b\f\x00\x1f\x7f", "<&>", "caf\u00e9 \U0001F600",
		"\u2028\u2029", "bad \xff utf-8 \xc3", "'UPDATE'",
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		if got := string(appendJSONString(nil, s)) + "\n"; got != want.String() {
			t.Errorf("%q: %s, encoding/json %s", s, got, want.String())
		}
	}
	doc := errorDoc(&cniError{Code: 11, Msg: "m\"", Details: "d"}, "0.4.0")
	if string(doc) != `{"cniVersion":"0.4.0","code":11,"msg":"m\"","details":"d"}`+"\n" {
		t.Errorf("%s", doc)
	}
	if !json.Valid(versionDoc("1.0.0")) || !json.Valid(errorDoc(&cniError{Code: 4, Msg: "x"}, "1.0.0")) {
		t.Error("invalid document")
	}
}
