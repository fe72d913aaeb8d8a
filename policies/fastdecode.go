package policies

import (
	"strconv"
	"unsafe"
)

// The fast path of Decode: the shape nearly every Diamond message has (a
// flat object of known keys, plain ASCII strings, JSON numbers), scanned
// without allocating, its strings interned. Anything else (escapes,
// non-ASCII, nested values, null, a repeated key, a key that differs from
// a known one only in case, a number out of range) goes to go-json, so
// what the fast path accepts it decodes exactly as go-json does; the
// differential fuzz target FuzzDecodeFastMatchesGoJSON checks that.

// fields is a message's fields as the checks read them.
type fields struct {
	NodeID, NodeName, DeploymentID, Name, Path, Unit, Type, Host, Service string
	metric, time, ttl                                                     float64
	hasMetric, hasTime, hasTTL                                            bool
}

func (w *wire) fields() fields {
	f := fields{NodeID: w.NodeID, NodeName: w.NodeName, DeploymentID: w.DeploymentID, Name: w.Name, Path: w.Path,
		Unit: w.Unit, Type: w.Type, Host: w.Host, Service: w.Service}
	if w.Metric != nil {
		f.metric, f.hasMetric = *w.Metric, true
	}
	if w.Time != nil {
		f.time, f.hasTime = *w.Time, true
	}
	if w.TTL != nil {
		f.ttl, f.hasTTL = *w.TTL, true
	}
	return f
}

// The known keys, in the order of fieldKeys' bits.
var fieldKeys = [...]string{"node_id", "node_name", "deployment_id", "name", "path", "metric", "unit", "type", "host", "service", "time", "ttl"}

// interner keeps one copy of the strings messages repeat (hosts, nodes,
// services), so decoding them allocates nothing. It is bounded: when full
// it starts again.
type interner struct {
	m    map[string]string
	last [len(fieldKeys)]string // per field, the last value (mostly the same)
}

const (
	maxInterned    = 1 << 16
	maxInternedLen = 256
)

func (in *interner) str(b []byte) string {
	if in == nil || len(b) > maxInternedLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 1024)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// scanFast fills f from data, or says (false) that data needs go-json.
func scanFast(data []byte, f *fields, in *interner) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	var seen uint16
	for {
		key, j, ok := scanPlainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		k := knownKey(key)
		switch {
		case k < 0:
			if foldsToKnown(key) {
				return false // go-json matches keys regardless of case
			}
			if i, ok = skipPlainValue(data, i); !ok {
				return false
			}
		case seen&(1<<k) != 0:
			return false // a repeated key: the last one wins there
		default:
			seen |= 1 << k
			if i, ok = scanField(data, i, k, f, in); !ok {
				return false
			}
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// scanField scans the value of known key k at data[i:].
func scanField(data []byte, i, k int, f *fields, in *interner) (int, bool) {
	switch fieldKeys[k] {
	case "metric", "time", "ttl":
		num, j, ok := scanNumber(data, i)
		if !ok {
			return 0, false
		}
		v, ok := exactFloat(num)
		if !ok {
			var err error
			if v, err = strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64); err != nil {
				return 0, false
			}
		}
		switch fieldKeys[k] {
		case "metric":
			f.metric, f.hasMetric = v, true
		case "time":
			f.time, f.hasTime = v, true
		default:
			f.ttl, f.hasTTL = v, true
		}
		return j, true
	}
	s, j, ok := scanPlainString(data, i)
	if !ok {
		return 0, false
	}
	var v string
	if in != nil && string(s) == in.last[k] {
		v = in.last[k]
	} else {
		v = in.str(s)
		if in != nil {
			in.last[k] = v
		}
	}
	switch fieldKeys[k] {
	case "node_id":
		f.NodeID = v
	case "node_name":
		f.NodeName = v
	case "deployment_id":
		f.DeploymentID = v
	case "name":
		f.Name = v
	case "path":
		f.Path = v
	case "unit":
		f.Unit = v
	case "type":
		f.Type = v
	case "host":
		f.Host = v
	case "service":
		f.Service = v
	}
	return j, true
}

func knownKey(key []byte) int {
	var k int
	switch len(key) {
	case 3:
		k = 11 // ttl
	case 4:
		switch key[0] {
		case 'n':
			k = 3 // name
		case 'p':
			k = 4 // path
		case 'u':
			k = 6 // unit
		case 't':
			if key[1] == 'y' {
				k = 7 // type
			} else {
				k = 10 // time
			}
		case 'h':
			k = 8 // host
		default:
			return -1
		}
	case 6:
		k = 5 // metric
	case 7:
		if key[0] == 'n' {
			k = 0 // node_id
		} else {
			k = 9 // service
		}
	case 9:
		k = 1 // node_name
	case 13:
		k = 2 // deployment_id
	default:
		return -1
	}
	if string(key) != fieldKeys[k] {
		return -1
	}
	return k
}

// foldsToKnown: key equals a known key but for ASCII case.
func foldsToKnown(key []byte) bool {
	for _, name := range fieldKeys {
		if len(key) != len(name) {
			continue
		}
		same := true
		for i := range key {
			if lower(key[i]) != name[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanPlainString scans a string of printable ASCII without escapes at
// data[i:], returning its contents and the index after it.
func scanPlainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		if plain[data[j]] {
			continue
		}
		if data[j] == '"' {
			return data[i+1 : j], j + 1, true
		}
		return nil, 0, false
	}
	return nil, 0, false
}

// plain marks the bytes a plain string holds as they are: printable
// ASCII but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanNumber scans a JSON number at data[i:].
func scanNumber(data []byte, i int) ([]byte, int, bool) {
	start := i
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i = digits(data, i)
	default:
		return nil, 0, false
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return nil, 0, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return nil, 0, false
		}
		i = j
	}
	return data[start:i], i, true
}

// exactFloat converts a JSON number without an exponent whose digits
// (at most 15) and decimals (at most 22) make an exact float64 quotient:
// one division, correctly rounded, so the same as any correct parser.
func exactFloat(num []byte) (float64, bool) {
	neg := len(num) > 0 && num[0] == '-'
	if neg {
		num = num[1:]
	}
	var mant uint64
	digits, decimals, dot := 0, 0, false
	for _, c := range num {
		switch {
		case c == '.':
			dot = true
		case '0' <= c && c <= '9':
			mant = mant*10 + uint64(c-'0')
			if mant != 0 {
				digits++
			}
			if dot {
				decimals++
			}
		default:
			return 0, false // an exponent
		}
	}
	if digits > 15 || decimals > 22 {
		return 0, false
	}
	v := float64(mant)
	if decimals > 0 {
		v /= pow10[decimals]
	}
	if neg {
		v = -v
	}
	return v, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

func digits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// skipPlainValue skips the value of an unknown key: a plain string, a
// number, true or false (anything else: go-json).
func skipPlainValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch c := data[i]; {
	case c == '"':
		_, j, ok := scanPlainString(data, i)
		return j, ok
	case c == '-' || '0' <= c && c <= '9':
		_, j, ok := scanNumber(data, i)
		return j, ok
	case c == 't' && hasPrefix(data[i:], "true"):
		return i + 4, true
	case c == 'f' && hasPrefix(data[i:], "false"):
		return i + 5, true
	}
	return 0, false
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }
