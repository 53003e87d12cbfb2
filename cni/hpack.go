package main

// An HPACK decoder (RFC 7541) for the agent's response headers and trailers: indexed fields,
// literals with and without indexing, the dynamic table with its size updates, and Huffman
// coded strings (grpcio codes most values). The request's few fields are written as literals
// without indexing, so the binary needs no encoder state.

import "errors"

var errHPACK = errors.New("malformed HPACK header block")

// headerTableSize is SETTINGS_HEADER_TABLE_SIZE as the binary leaves it (the protocol's default).
const headerTableSize = 4096

type headerField struct{ name, value string }

type hpackDecoder struct {
	dynamic []headerField // newest first: index 62 is dynamic[0]
	size    int           // RFC 7541 4.1: the sum of len(name) + len(value) + 32
	maxSize int           // the limit the encoder chose (<= headerTableSize)
}

func newHPACKDecoder() *hpackDecoder { return &hpackDecoder{maxSize: headerTableSize} }

// decode calls emit for each field of a complete header block, in order.
func (d *hpackDecoder) decode(block []byte, emit func(name, value string)) error {
	for len(block) > 0 {
		b := block[0]
		switch {
		case b&0x80 != 0: // indexed field
			index, rest, err := readInt(block, 7)
			if err != nil {
				return err
			}
			field, err := d.entry(index)
			if err != nil {
				return err
			}
			emit(field.name, field.value)
			block = rest
		case b&0xe0 == 0x20: // dynamic table size update
			size, rest, err := readInt(block, 5)
			if err != nil || size > headerTableSize {
				return errHPACK
			}
			d.maxSize = int(size)
			d.evict(0)
			block = rest
		default:
			prefix, indexing := 4, false // without indexing (0000) or never indexed (0001)
			if b&0xc0 == 0x40 {
				prefix, indexing = 6, true
			}
			field, rest, err := d.literal(block, prefix)
			if err != nil {
				return err
			}
			if indexing {
				d.add(field)
			}
			emit(field.name, field.value)
			block = rest
		}
	}
	return nil
}

func (d *hpackDecoder) entry(index uint64) (headerField, error) {
	switch {
	case index == 0:
		return headerField{}, errHPACK
	case index <= uint64(len(staticTable)):
		e := staticTable[index-1]
		return headerField{e[0], e[1]}, nil
	case index-uint64(len(staticTable))-1 < uint64(len(d.dynamic)):
		return d.dynamic[index-uint64(len(staticTable))-1], nil
	}
	return headerField{}, errHPACK
}

func (d *hpackDecoder) literal(block []byte, prefix int) (headerField, []byte, error) {
	index, rest, err := readInt(block, prefix)
	if err != nil {
		return headerField{}, nil, err
	}
	var field headerField
	if index == 0 {
		if field.name, rest, err = readString(rest); err != nil {
			return field, nil, err
		}
	} else {
		named, err := d.entry(index)
		if err != nil {
			return field, nil, err
		}
		field.name = named.name
	}
	field.value, rest, err = readString(rest)
	return field, rest, err
}

func (d *hpackDecoder) add(field headerField) {
	size := len(field.name) + len(field.value) + 32
	if size > d.maxSize { // RFC 7541 4.4: an entry larger than the table empties it
		d.dynamic, d.size = d.dynamic[:0], 0
		return
	}
	d.evict(size)
	d.dynamic = append(d.dynamic, headerField{})
	copy(d.dynamic[1:], d.dynamic)
	d.dynamic[0] = field
	d.size += size
}

// evict drops the oldest entries until room more bytes fit.
func (d *hpackDecoder) evict(room int) {
	for len(d.dynamic) > 0 && d.size+room > d.maxSize {
		last := d.dynamic[len(d.dynamic)-1]
		d.size -= len(last.name) + len(last.value) + 32
		d.dynamic = d.dynamic[:len(d.dynamic)-1]
	}
}

// readInt decodes an integer with an n-bit prefix (RFC 7541 5.1).
func readInt(b []byte, n int) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errHPACK
	}
	mask := uint64(1)<<n - 1
	v := uint64(b[0]) & mask
	b = b[1:]
	if v < mask {
		return v, b, nil
	}
	for shift := 0; len(b) > 0; shift += 7 {
		if shift > 28 { // larger than anything a header block can hold
			return 0, nil, errHPACK
		}
		c := b[0]
		b = b[1:]
		v += uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, b, nil
		}
	}
	return 0, nil, errHPACK
}

// readString decodes a string literal, plain or Huffman coded (RFC 7541 5.2).
func readString(b []byte) (string, []byte, error) {
	if len(b) == 0 {
		return "", nil, errHPACK
	}
	huffman := b[0]&0x80 != 0
	size, rest, err := readInt(b, 7)
	if err != nil || size > uint64(len(rest)) {
		return "", nil, errHPACK
	}
	raw, rest := rest[:size], rest[size:]
	if !huffman {
		return string(raw), rest, nil
	}
	s, err := huffmanDecode(raw)
	return s, rest, err
}

// huffmanNode is a node of the decoding tree: children by bit, or a leaf's byte (sym >= 0).
type huffmanNode struct {
	child [2]int16
	sym   int16
}

var huffmanTree []huffmanNode

func buildHuffmanTree() []huffmanNode {
	tree := make([]huffmanNode, 1, 512)
	tree[0].sym = -1
	for sym, code := range huffmanCodes {
		node := 0
		for bit := int(huffmanLengths[sym]) - 1; bit >= 0; bit-- {
			b := (code >> bit) & 1
			if tree[node].child[b] == 0 {
				tree = append(tree, huffmanNode{sym: -1})
				tree[node].child[b] = int16(len(tree) - 1)
			}
			node = int(tree[node].child[b])
		}
		tree[node].sym = int16(sym)
	}
	return tree
}

func huffmanDecode(raw []byte) (string, error) {
	if huffmanTree == nil {
		huffmanTree = buildHuffmanTree()
	}
	out := make([]byte, 0, len(raw)*8/5)
	node, pending, ones := 0, 0, true // bits since the last symbol, all of them 1s
	for _, c := range raw {
		for bit := 7; bit >= 0; bit-- {
			b := (c >> bit) & 1
			next := huffmanTree[node].child[b]
			if next == 0 { // no code continues this way (EOS's 30 1s, or garbage)
				return "", errHPACK
			}
			node = int(next)
			pending++
			ones = ones && b == 1
			if sym := huffmanTree[node].sym; sym >= 0 {
				out = append(out, byte(sym))
				node, pending, ones = 0, 0, true
			}
		}
	}
	if pending > 7 || !ones { // padding: fewer than 8 bits, the most significant bits of EOS
		return "", errHPACK
	}
	return string(out), nil
}

// encodeHeaders writes each field as a literal without indexing and with a literal name (RFC
// 7541 6.2.2): no state on either side. Names must be lower case.
func encodeHeaders(headers [][2]string) []byte {
	var b []byte
	for _, h := range headers {
		b = append(b, 0)
		b = appendHPACKString(b, h[0])
		b = appendHPACKString(b, h[1])
	}
	return b
}

func appendHPACKString(b []byte, s string) []byte {
	n := uint64(len(s)) // a 7-bit prefix integer, not Huffman coded
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		for n -= 127; n >= 128; n >>= 7 {
			b = append(b, byte(n&0x7f|0x80))
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}
