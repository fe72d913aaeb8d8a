package policies

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
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

// The fields' indexes in fieldKeys.
const (
	fieldNodeID = iota
	fieldNodeName
	fieldDeploymentID
	fieldName
	fieldPath
	fieldMetric
	fieldUnit
	fieldType
	fieldHost
	fieldService
	fieldTime
	fieldTTL
)

// interner keeps one copy of the strings messages repeat (hosts, nodes,
// services), so decoding them allocates nothing. It is bounded: when full
// it starts again.
type interner struct {
	m    map[string]string
	last [len(fieldKeys)]string // per field, the last value (mostly the same)
	// idents are the identities of the messages seen (their string
	// fields), by a hash of their deployment, host and service: a message
	// of a known one takes its strings, and its series, from there.
	idents map[uint64]*ident
	seed   maphash.Seed
	// shape is the layout of the messages (scanFast).
	shape shape
}

// ident is an identity of messages: their string fields, interned as
// check made them, and the series their metrics go to (Pipeline.apply;
// valid while w is the pipeline's windows and s is not gone).
type ident struct {
	strs [len(stringFields)]string
	w    *Windows
	s    *series
	// next is the identity after it among those whose messages begin
	// with the same bytes (shape.byPrefix), in shape generation gen.
	next *ident
	gen  uint64
}

// stringFields are the string fields' indexes in fieldKeys.
var stringFields = [...]int{fieldNodeID, fieldNodeName, fieldDeploymentID, fieldName, fieldPath, fieldUnit, fieldType, fieldHost, fieldService}

// rawStrings are a message's string fields as scanned, by fieldKeys'
// index (nil: absent), before interning.
type rawStrings [len(fieldKeys)][]byte

// maxIdents bounds the identities kept: when full, it starts again.
const maxIdents = 1 << 16

// known finds the identity of raw (nil: none yet), and says whether raw
// may have one at all (it names its deployment and service, none of its
// strings too long to intern) and under which hash.
func (in *interner) known(raw *rawStrings) (id *ident, h uint64, ok bool) {
	if in == nil || len(raw[fieldDeploymentID]) == 0 || len(raw[fieldService]) == 0 {
		return nil, 0, false
	}
	for _, k := range stringFields {
		if len(raw[k]) > maxInternedLen {
			return nil, 0, false
		}
	}
	if in.idents == nil {
		in.idents, in.seed = map[uint64]*ident{}, maphash.MakeSeed()
	}
	h = maphash.Bytes(in.seed, raw[fieldDeploymentID])
	h = h*0x9e3779b97f4a7c15 ^ maphash.Bytes(in.seed, raw[fieldService])
	h = h*0x9e3779b97f4a7c15 ^ maphash.Bytes(in.seed, raw[fieldHost])
	id = in.idents[h]
	if id == nil {
		return nil, h, true
	}
	for j, k := range stringFields {
		if string(raw[k]) != id.strs[j] {
			return nil, h, true // another identity of the same hash: the slow way
		}
	}
	return id, h, true
}

// keep makes m's strings the identity of hash h.
func (in *interner) keep(h uint64, m *Metric) *ident {
	if len(in.idents) >= maxIdents {
		clear(in.idents)
		clear(in.shape.byPrefix)
	}
	id := &ident{strs: [...]string{m.NodeID, m.NodeName, m.DeploymentID, m.Name, m.Path, m.Unit, m.Type, m.Host, m.Service}}
	in.idents[h] = id
	return id
}

// intern fills f's strings from raw, interned (in nil: copied).
func (in *interner) intern(f *fields, raw *rawStrings) {
	for _, k := range stringFields {
		if raw[k] != nil {
			f.set(k, in.field(k, raw[k]))
		}
	}
}

// field interns the value s of string field k.
func (in *interner) field(k int, s []byte) string {
	if in != nil && string(s) == in.last[k] {
		return in.last[k]
	}
	v := in.str(s)
	if in != nil {
		in.last[k] = v
	}
	return v
}

// set sets string field k.
func (f *fields) set(k int, v string) {
	switch k {
	case fieldNodeID:
		f.NodeID = v
	case fieldNodeName:
		f.NodeName = v
	case fieldDeploymentID:
		f.DeploymentID = v
	case fieldName:
		f.Name = v
	case fieldPath:
		f.Path = v
	case fieldUnit:
		f.Unit = v
	case fieldType:
		f.Type = v
	case fieldHost:
		f.Host = v
	case fieldService:
		f.Service = v
	}
}

// metric makes m of the identity's strings and f's numbers.
func (id *ident) metric(m *Metric, f *fields) {
	m.NodeID, m.NodeName, m.DeploymentID, m.Name, m.Path = id.strs[0], id.strs[1], id.strs[2], id.strs[3], id.strs[4]
	m.Unit, m.Type, m.Host, m.Service = id.strs[5], id.strs[6], id.strs[7], id.strs[8]
	m.Value, m.Time, m.TTL = f.metric, f.time, 0
	if f.hasTTL {
		m.TTL = f.ttl
	}
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
// Its strings are left in raw, for the caller to intern (interner.intern)
// or find (interner.known). With sh, a message of the shape of the last
// one scanned is scanned by its shape, and a message scanned key by key
// becomes the shape.
func scanFast(data []byte, f *fields, raw *rawStrings, sh *shape) bool {
	if sh != nil {
		if sh.scan(data, f, raw) {
			return true
		}
		*f, *raw = fields{}, rawStrings{}
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	var seen uint16
	// The shape: where each known field's literal starts (the end of the
	// value before) and its value starts.
	var steps [len(fieldKeys)]scannedStep
	n, end := 0, 0
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
			sh = nil // a shape has known keys only
		case seen&(1<<k) != 0:
			return false // a repeated key: the last one wins there
		default:
			seen |= 1 << k
			steps[n].k, steps[n].lit, steps[n].val = k, end, i
			n++
			if i, ok = scanField(data, i, k, f, raw); !ok {
				return false
			}
		}
		end = i
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			if skipSpace(data, i+1) != len(data) {
				return false
			}
			if sh != nil {
				sh.learn(data, steps[:n])
			}
			return true
		default:
			return false
		}
	}
}

// shape is the layout of a message scanned key by key: its known keys in
// order, each with its literal, the bytes from the end of the value
// before it (or the message's start) to its value: a comma or the
// brace, the quoted key, the colon and the spaces between. Producers
// write every message in one layout, so the next message is mostly
// scanned by comparing each literal and scanning the value after it. A
// message that matches every literal is one the scan key by key reads
// the same (the literals came from one it accepted).
type shape struct {
	lits  []byte
	steps []shapeStep
	// prefix is how many bytes every message of the shape has before its
	// first number (0: it has none), suffix how many before its last
	// number, when it ends with one, after the number before (0: it does
	// not end with a number). Both are the same in every message of an
	// identity, and together mostly tell identities apart (a Diamond
	// message's deployment and node are at its start, its host and
	// service before its time).
	prefix, suffix int
	// byPrefix are the identities of messages of the shape by a hash of
	// their first prefix bytes, each chained to the next of the same
	// hash (identified); gen counts the shapes learned.
	byPrefix map[uint64]*ident
	gen      uint64
}

// shapeStep is a field of a shape; its literal ends at lits[end].
type shapeStep struct{ k, end int }

// scannedStep is a known field scanned key by key: where its literal
// starts (the end of the value before) and its value starts.
type scannedStep struct{ k, lit, val int }

// learn makes the shape the layout of data, scanned key by key.
func (sh *shape) learn(data []byte, steps []scannedStep) {
	sh.lits, sh.steps = sh.lits[:0], sh.steps[:0]
	sh.prefix, sh.suffix, sh.gen = 0, 0, sh.gen+1
	clear(sh.byPrefix)
	quotes, since := 0, 0 // since: the bytes at least since the last number
	for _, st := range steps {
		lit := data[st.lit:st.val]
		sh.lits = append(sh.lits, lit...)
		sh.steps = append(sh.steps, shapeStep{k: st.k, end: len(sh.lits)})
		since += len(lit)
		if stringIndex[st.k] >= 0 {
			quotes += 2 // an empty string's, at least
			since += 2
			sh.suffix = 0
			continue
		}
		if sh.prefix == 0 {
			sh.prefix = len(sh.lits) + quotes
		}
		sh.suffix, since = since, 0
	}
}

// key is the hash identified finds an identity of a message of the shape
// by: of its first prefix bytes, and of the suffix bytes before its last
// number (false: data cannot be of the shape).
func (sh *shape) key(data []byte, seed maphash.Seed) (uint64, bool) {
	if sh.prefix == 0 || len(data) < sh.prefix {
		return 0, false
	}
	h := maphash.Bytes(seed, data[:sh.prefix])
	if sh.suffix == 0 {
		return h, true
	}
	end := lastNumber(data)
	if end < sh.suffix {
		return 0, false
	}
	return h*0x9e3779b97f4a7c15 ^ maphash.Bytes(seed, data[end-sh.suffix:end]), true
}

// lastNumber is where the number that ends data's object starts (-1:
// it does not end with one).
func lastNumber(data []byte) int {
	i := len(data)
	for i > 0 && isSpace(data[i-1]) {
		i--
	}
	if i == 0 || data[i-1] != '}' {
		return -1
	}
	i--
	for i > 0 && isSpace(data[i-1]) {
		i--
	}
	j := i
	for j > 0 && numberByte[data[j-1]] {
		j--
	}
	if j == i {
		return -1
	}
	return j
}

// numberByte marks the bytes a JSON number is written with.
var numberByte = func() (t [256]bool) {
	for _, c := range "0123456789.eE+-" {
		t[c] = true
	}
	return t
}()

// maxChain is how many identities beginning with the same bytes (a
// node's hosts, say) identified tries.
const maxChain = 8

// identified finds the identity of a message of the shape without
// scanning its strings: the identities of its key (its first bytes and
// those before its last number) are each compared with it (read); f gets
// its numbers. nil: none is its identity, and f is zero (a read that
// failed part way is cleared; f is given zero).
func (sh *shape) identified(data []byte, f *fields, seed maphash.Seed) *ident {
	if len(sh.byPrefix) == 0 {
		return nil
	}
	h, ok := sh.key(data, seed)
	if !ok {
		return nil
	}
	id := sh.byPrefix[h]
	for n := 0; id != nil && n < maxChain; n++ {
		if sh.read(data, f, nil, id) {
			return id
		}
		*f = fields{}
		id = id.next
	}
	return nil
}

// identify puts id first among the identities beginning with data's
// first bytes, when data is of the shape and of id (so identified finds
// it). An identity identified passed over (more than maxChain before
// it) comes first again; a chain keeps maxChain*4 (the rest are found
// the slow way, and put first again by it).
func (sh *shape) identify(id *ident, data []byte, seed maphash.Seed) {
	h, ok := sh.key(data, seed)
	if !ok {
		return
	}
	indexed := id.gen == sh.gen
	id.gen = sh.gen
	var f fields
	if !sh.read(data, &f, nil, id) {
		if !indexed {
			id.gen = 0
		}
		return
	}
	if sh.byPrefix == nil {
		sh.byPrefix = map[uint64]*ident{}
	}
	head := sh.byPrefix[h]
	if indexed {
		// Out of where it is (if it is still chained).
		for p, n := &head, 0; *p != nil && n < maxChain*4; p, n = &(*p).next, n+1 {
			if *p == id {
				*p = id.next
				break
			}
		}
	}
	id.next = head
	sh.byPrefix[h] = id
	for p, n := id, 1; p != nil; p, n = p.next, n+1 {
		if n == maxChain*4 {
			p.next = nil
			break
		}
	}
}

// stringIndex is each known field's index in stringFields (-1: a
// number).
var stringIndex = func() (idx [len(fieldKeys)]int) {
	for k := range idx {
		idx[k] = -1
	}
	for j, k := range stringFields {
		idx[k] = j
	}
	return idx
}()

// scan fills f and raw from data of the shape (false: not of it).
func (sh *shape) scan(data []byte, f *fields, raw *rawStrings) bool {
	return sh.read(data, f, raw, nil)
}

// read is scan; with id, it reads a message of the shape and of identity
// id: the strings are compared with id's instead of scanned, and only f's
// numbers are filled (raw is not written: it may be nil). What it then
// accepts, scan accepts with the same fields: id's strings came from a
// plain string scan, so the comparison ends where the scan would (or
// are absent, then empty, and a message with the field empty is the
// same metric; a string the shape has not is one id's messages have not).
func (sh *shape) read(data []byte, f *fields, raw *rawStrings, id *ident) bool {
	if len(sh.steps) == 0 {
		return false
	}
	i, lo := 0, 0
	for _, st := range sh.steps {
		lit := sh.lits[lo:st.end]
		lo = st.end
		if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != string(lit) {
			return false
		}
		i += len(lit)
		if j := stringIndex[st.k]; id != nil && j >= 0 {
			s := id.strs[j]
			if len(data)-i < len(s)+2 || data[i] != '"' || string(data[i+1:i+1+len(s)]) != s || data[i+1+len(s)] != '"' {
				return false
			}
			i += len(s) + 2
			continue
		}
		var ok bool
		if i, ok = scanField(data, i, st.k, f, raw); !ok {
			return false
		}
	}
	i = skipSpace(data, i)
	return i < len(data) && data[i] == '}' && skipSpace(data, i+1) == len(data)
}

// scanField scans the value of known key k at data[i:].
func scanField(data []byte, i, k int, f *fields, raw *rawStrings) (int, bool) {
	switch k {
	case fieldMetric, fieldTime, fieldTTL:
		v, j, ok := scanInt(data, i)
		if !ok {
			if v, j, ok = scanFloat(data, i); !ok {
				return 0, false
			}
		}
		switch k {
		case fieldMetric:
			f.metric, f.hasMetric = v, true
		case fieldTime:
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
	raw[k] = s
	return j, true
}

func knownKey(key []byte) int {
	var k int
	switch len(key) {
	case 3:
		k = fieldTTL
	case 4:
		switch key[0] {
		case 'n':
			k = fieldName
		case 'p':
			k = fieldPath
		case 'u':
			k = fieldUnit
		case 't':
			if key[1] == 'y' {
				k = fieldType
			} else {
				k = fieldTime
			}
		case 'h':
			k = fieldHost
		default:
			return -1
		}
	case 6:
		k = fieldMetric
	case 7:
		if key[0] == 'n' {
			k = fieldNodeID
		} else {
			k = fieldService
		}
	case 9:
		k = fieldNodeName
	case 13:
		k = fieldDeploymentID
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
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// scanPlainString scans a string of printable ASCII without escapes at
// data[i:], returning its contents and the index after it. It reads eight
// bytes at a time while they are all plain.
func scanPlainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	for ; j+8 <= len(data); j += 8 {
		if m := unplain(binary.LittleEndian.Uint64(data[j:])); m != 0 {
			j += bits.TrailingZeros64(m) / 8
			return endPlain(data, i, j)
		}
	}
	for ; j < len(data); j++ {
		if !plain[data[j]] {
			return endPlain(data, i, j)
		}
	}
	return nil, 0, false
}

// endPlain ends the plain string opened at data[i] where data[j], the
// first byte that is not plain, is its closing quote.
func endPlain(data []byte, i, j int) ([]byte, int, bool) {
	if data[j] == '"' {
		return data[i+1 : j], j + 1, true
	}
	return nil, 0, false
}

// unplain marks (the high bit of each byte) the bytes of x, eight bytes
// of a string in memory order, that plain does not: a quote, a
// backslash, a control byte, a byte of 0x80 or above. A mark may also
// fall on a plain byte after the first marked one (a borrow carries up),
// never before it: only the lowest mark is meant.
func unplain(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := x^(ones*'"'), x^(ones*'\\')
	return ((q-ones)&^q | (b-ones)&^b | (x-ones*0x20)&^x | x) & highs
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

// scanFloat reads any JSON number at data[i:].
func scanFloat(data []byte, i int) (float64, int, bool) {
	num, j, ok := scanNumber(data, i)
	if !ok {
		return 0, 0, false
	}
	v, ok := exactFloat(num)
	if !ok {
		var err error
		if v, err = strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64); err != nil {
			return 0, 0, false
		}
	}
	return v, j, true
}

// scanInt reads the number at data[i:] in one pass when it is an integer
// of at most 15 digits (most are: times, counters, percentages), exact in
// a float64; anything else (a fraction, an exponent, more digits, not a
// number) is left to scanFloat (ok false).
func scanInt(data []byte, i int) (float64, int, bool) {
	j := i
	neg := j < len(data) && data[j] == '-'
	if neg {
		j++
	}
	start := j
	var mant uint64
	for j < len(data) && j-start <= 15 {
		d := data[j] - '0'
		if d > 9 {
			break
		}
		mant = mant*10 + uint64(d)
		j++
	}
	n := j - start
	if n == 0 || n > 15 || n > 1 && data[start] == '0' {
		return 0, 0, false
	}
	if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E' || data[j]-'0' <= 9) {
		return 0, 0, false
	}
	v := float64(mant)
	if neg {
		v = -v
	}
	return v, j, true
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

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
