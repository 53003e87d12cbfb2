package main

// The little JSON the binary needs, without encoding/json (whose reflection-based code and
// initialisation cost every exec a few hundred microseconds): a validating scanner that
// returns the top-level members of an object, and a string encoder for the documents it
// prints. The agent parses the configuration fully; the binary only needs cniVersion,
// grpcServer and logFile, and to tell the runtime when stdin is not JSON at all.

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting (encoding/json's limit).
const maxJSONDepth = 10000

// jsonSyntaxError names what is wrong and where (a byte offset).
type jsonSyntaxError struct {
	msg    string
	offset int
}

func (e *jsonSyntaxError) Error() string {
	return e.msg + " at offset " + strconv.Itoa(e.offset)
}

// jsonMember is one top-level member of an object: its raw text, and its value when it is a
// string.
type jsonMember struct {
	raw      string
	str      string
	isString bool
}

type jsonScanner struct {
	data []byte
	pos  int
}

// scanJSON checks that data is exactly one JSON value (with surrounding white space). When
// it is an object, it returns its members (the last of duplicate names wins), else nil.
func scanJSON(data []byte) (map[string]jsonMember, error) {
	s := &jsonScanner{data: data}
	s.space()
	var members map[string]jsonMember
	if s.pos < len(data) && data[s.pos] == '{' {
		members = map[string]jsonMember{}
	}
	if err := s.value(0, members); err != nil {
		return nil, err
	}
	s.space()
	if s.pos != len(data) {
		return nil, s.fail("data after the top-level value")
	}
	return members, nil
}

func (s *jsonScanner) fail(msg string) error { return &jsonSyntaxError{msg, s.pos} }

func (s *jsonScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value; members, when not nil, collects the object's members (top level).
func (s *jsonScanner) value(depth int, members map[string]jsonMember) error {
	if depth > maxJSONDepth {
		return s.fail("nesting deeper than " + strconv.Itoa(maxJSONDepth))
	}
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of JSON input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth, members)
	case c == '[':
		s.pos++
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			s.pos++
			return nil
		}
		for {
			s.space()
			if err := s.value(depth+1, nil); err != nil {
				return err
			}
			s.space()
			if done, err := s.next(']'); done || err != nil {
				return err
			}
		}
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	for _, word := range []string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
			s.pos += len(word)
			return nil
		}
	}
	return s.fail("invalid character " + strconv.QuoteRune(rune(s.data[s.pos])) + " looking for a value")
}

func (s *jsonScanner) object(depth int, members map[string]jsonMember) error {
	s.pos++
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("expected a string for an object key")
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("expected ':' after an object key")
		}
		s.pos++
		s.space()
		start := s.pos
		if err := s.value(depth+1, nil); err != nil {
			return err
		}
		if members != nil {
			m := jsonMember{raw: string(s.data[start:s.pos])}
			if s.data[start] == '"' {
				m.isString = true
				m.str, _ = (&jsonScanner{data: s.data, pos: start}).str()
			}
			members[name] = m
		}
		s.space()
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

// next consumes ',' (more to come) or the closing bracket (done).
func (s *jsonScanner) next(closing byte) (bool, error) {
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',':
			s.pos++
			return false, nil
		case closing:
			s.pos++
			return true, nil
		}
	}
	return false, s.fail("expected ',' or '" + string(closing) + "'")
}

func (s *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return s.fail("invalid number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.fail("invalid number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.fail("invalid number")
		}
	}
	return nil
}

// str scans a string at s.pos (its opening quote) and returns its value.
func (s *jsonScanner) str() (string, error) {
	s.pos++
	var out []byte
	for start := s.pos; ; {
		if s.pos >= len(s.data) {
			return "", s.fail("unexpected end of JSON input in a string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			out = append(out, s.data[start:s.pos]...)
			s.pos++
			return string(out), nil
		case c < 0x20:
			return "", s.fail("control character in a string")
		case c == '\\':
			out = append(out, s.data[start:s.pos]...)
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			out = utf8.AppendRune(out, r)
			start = s.pos
		default:
			s.pos++
		}
	}
}

// escape decodes one escape sequence at s.pos (its backslash); an unpaired surrogate
// decodes as U+FFFD, as encoding/json does.
func (s *jsonScanner) escape() (rune, error) {
	if s.pos+1 >= len(s.data) {
		return 0, s.fail("unexpected end of JSON input in a string")
	}
	c := s.data[s.pos+1]
	s.pos += 2
	if i := indexByte(`"\/bfnrt`, c); i >= 0 {
		return rune("\"\\/\b\f\n\r\t"[i]), nil
	}
	if c != 'u' {
		return 0, s.fail("invalid escape in a string")
	}
	r, ok := s.hex4()
	if !ok {
		return 0, s.fail("invalid \\u escape in a string")
	}
	if utf16.IsSurrogate(r) {
		save := s.pos
		if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
			s.pos += 2
			if r2, ok := s.hex4(); ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return dec, nil
				}
			}
		}
		s.pos = save
		return utf8.RuneError, nil
	}
	return r, nil
}

func (s *jsonScanner) hex4() (rune, bool) {
	if len(s.data)-s.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	s.pos += 4
	return r, true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// appendJSONString writes s as a JSON string the way encoding/json does without HTML
// escaping: invalid UTF-8 becomes U+FFFD, U+2028 and U+2029 are escaped.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, "\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
