package main

import (
	"encoding/hex"
	"strings"
	"testing"
)

type decodeStep struct {
	hex    string
	fields []headerField
	size   int
}

func runDecodeSteps(t *testing.T, d *hpackDecoder, steps []decodeStep) {
	t.Helper()
	for i, step := range steps {
		block, err := hex.DecodeString(strings.ReplaceAll(step.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		var got []headerField
		if err := d.decode(block, func(n, v string) { got = append(got, headerField{n, v}) }); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(got) != len(step.fields) {
			t.Fatalf("step %d: %v", i, got)
		}
		for j := range got {
			if got[j] != step.fields[j] {
				t.Errorf("step %d field %d: %v, want %v", i, j, got[j], step.fields[j])
			}
		}
		if d.size != step.size {
			t.Errorf("step %d: table size %d, want %d", i, d.size, step.size)
		}
	}
}

// RFC 7541 C.4: requests with Huffman coding, sharing one dynamic table.
func TestHPACKRequestsWithHuffmanCoding(t *testing.T) {
	authority := headerField{":authority", "www.example.com"}
	runDecodeSteps(t, newHPACKDecoder(), []decodeStep{
		{"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
			[]headerField{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, authority}, 57},
		{"8286 84be 5886 a8eb 1064 9cbf",
			[]headerField{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, authority,
				{"cache-control", "no-cache"}}, 110},
		{"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
			[]headerField{{":method", "GET"}, {":scheme", "https"}, {":path", "/index.html"}, authority,
				{"custom-key", "custom-value"}}, 164},
	})
}

// RFC 7541 C.6: responses with Huffman coding and a 256-byte table, so entries are evicted.
func TestHPACKResponsesWithEviction(t *testing.T) {
	d := newHPACKDecoder()
	d.maxSize = 256
	private, location := headerField{"cache-control", "private"}, headerField{"location", "https://www.example.com"}
	runDecodeSteps(t, d, []decodeStep{
		{"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e " +
			"919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
			[]headerField{{":status", "302"}, private, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"}, location}, 222},
		{"4883 640e ffc1 c0bf",
			[]headerField{{":status", "307"}, private, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"}, location}, 222},
		{"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 " +
			"821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed " +
			"4ee5 b106 3d50 07",
			[]headerField{{":status", "200"}, private, {"date", "Mon, 21 Oct 2013 20:13:22 GMT"}, location,
				{"content-encoding", "gzip"},
				{"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}}, 215},
	})
}

func TestHPACKSizeUpdateAndBadBlocks(t *testing.T) {
	d := newHPACKDecoder()
	runDecodeSteps(t, d, []decodeStep{ // a literal with indexing, then a size update to 0 empties the table
		{"400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
			[]headerField{{"custom-key", "custom-header"}}, 55},
		{"20", nil, 0},
	})
	for _, bad := range []string{
		"80",                  // index 0
		"be",                  // index 62 with an empty dynamic table
		"3fe2 1f",             // a size update above 4096
		"0003 6162",           // a string longer than the block
		"0081 ff 0161",        // Huffman padding longer than 7 bits
		"0084 ffff ffff 0161", // EOS inside a string
		"ff80 8080 8080 01",   // an integer that does not fit
	} {
		block, _ := hex.DecodeString(strings.ReplaceAll(bad, " ", ""))
		if err := newHPACKDecoder().decode(block, func(string, string) {}); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestHuffmanDecodesEveryByte(t *testing.T) {
	// Encode every byte value with the code table and decode it back.
	var bits uint64
	var n uint
	var out []byte
	for sym := 0; sym < 256; sym++ {
		bits = bits<<huffmanLengths[sym] | uint64(huffmanCodes[sym])
		n += uint(huffmanLengths[sym])
		for n >= 8 {
			out = append(out, byte(bits>>(n-8)))
			n -= 8
		}
	}
	if n > 0 { // pad with the most significant bits of EOS (all ones)
		out = append(out, byte(bits<<(8-n))|byte(0xff>>n))
	}
	s, err := huffmanDecode(out)
	if err != nil || len(s) != 256 {
		t.Fatalf("%v, %d bytes", err, len(s))
	}
	for i := range 256 {
		if s[i] != byte(i) {
			t.Fatalf("byte %d decoded as %d", i, s[i])
		}
	}
}
