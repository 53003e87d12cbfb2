package main

// The protobuf wire format of the two messages of plugins/podmanager/cni.proto that the binary
// uses, by hand (keep the field numbers in step with the .proto).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

func appendKey(b []byte, field, wireType int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wireType))
}

// appendString encodes a string field (proto3: the empty string is not written).
func appendString(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	b = appendKey(b, field, 2)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, field int, s []byte) []byte {
	return appendString(b, field, string(s))
}

func appendBool(b []byte, field int, v bool) []byte {
	if !v {
		return b
	}
	return append(appendKey(b, field, 0), 1)
}

// reply holds the CNIReply fields the binary uses; the structured result (fields 4-6) is
// skipped: the agent also sends the document to print (output).
type reply struct {
	result       uint32
	error        string
	errorDetails string
	output       string
}

var errTruncated = errors.New("truncated message")

func decodeReply(data []byte) (*reply, error) {
	r := &reply{}
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, errTruncated
		}
		data = data[n:]
		field, wireType := key>>3, key&7
		switch wireType {
		case 0:
			v, n := binary.Uvarint(data)
			if n <= 0 {
				return nil, errTruncated
			}
			data = data[n:]
			if field == 1 {
				r.result = uint32(v)
			}
		case 1, 5:
			size := 8
			if wireType == 5 {
				size = 4
			}
			if len(data) < size {
				return nil, errTruncated
			}
			data = data[size:]
		case 2:
			size, n := binary.Uvarint(data)
			if n <= 0 || size > uint64(len(data)-n) {
				return nil, errTruncated
			}
			value := data[n : n+int(size)]
			data = data[n+int(size):]
			if field == 2 || field == 7 || field == 8 {
				if !utf8.Valid(value) {
					return nil, fmt.Errorf("field %d is not valid UTF-8", field)
				}
			}
			switch field {
			case 2:
				r.error = string(value)
			case 7:
				r.errorDetails = string(value)
			case 8:
				r.output = string(value)
			}
		default:
			return nil, fmt.Errorf("unsupported wire type %d (field %d)", wireType, field)
		}
	}
	return r, nil
}
