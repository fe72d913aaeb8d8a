package policies

import (
	stdjson "encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// A message as Cloudify's Diamond handler publishes it.
const diamondMessage = `{"node_id": "bookings_a1b2c3", "node_name": "bookings", "deployment_id": "shop", "name": "cpu", "path": "total.user", "metric": 73.5, "unit": "percent", "type": "GAUGE", "host": "10.0.0.7", "service": "shop.bookings.bookings_a1b2c3.cpu.total.user", "time": 1763856000}`

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body, key string
		kind            string // "" = valid
		check           func(t *testing.T, m Metric)
	}{
		{name: "diamond", body: diamondMessage, check: func(t *testing.T, m Metric) {
			if m.Value != 73.5 || m.Host != "10.0.0.7" || m.Key() != "cpu.total.user" || m.Time != 1763856000 {
				t.Errorf("%+v", m)
			}
		}},
		{name: "service derived, deployment from routing key", key: "shop",
			body: `{"node_name":"web","node_id":"web_1","name":"rps","path":"","metric":5,"host":"h","time":1.5e9}`,
			check: func(t *testing.T, m Metric) {
				if m.DeploymentID != "shop" || m.Service != "shop.web.web_1.rps." || m.Key() != "rps" {
					t.Errorf("%+v", m)
				}
			}},
		{name: "bad json", body: `{"metric": `, kind: "json"},
		{name: "not an object", body: `[1,2]`, kind: "type"},
		{name: "metric as text", body: strings.Replace(diamondMessage, "73.5", `"high"`, 1), kind: "type"},
		{name: "time as text", body: strings.Replace(diamondMessage, "1763856000", `"now"`, 1), kind: "type"},
		{name: "no metric", body: strings.Replace(diamondMessage, `"metric": 73.5, `, "", 1), kind: "missing"},
		{name: "no time", body: strings.Replace(diamondMessage, `, "time": 1763856000`, "", 1), kind: "missing"},
		{name: "no host", body: strings.Replace(diamondMessage, `"host": "10.0.0.7", `, "", 1), kind: "missing"},
		{name: "no deployment", body: strings.Replace(diamondMessage, `"deployment_id": "shop", `, "", 1), kind: "missing"},
		{name: "negative time", body: strings.Replace(diamondMessage, "1763856000", "-5", 1), kind: "value"},
		{name: "huge", body: `{"x":"` + strings.Repeat("a", MaxMessageSize) + `"}`, kind: "too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.body), tt.key)
			kind, malformed := IsMalformed(err)
			if tt.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, m)
				return
			}
			if !malformed || kind != tt.kind {
				t.Errorf("err = %v, want kind %s", err, tt.kind)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	m, err := Decode([]byte(diamondMessage), "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data, "")
	if err != nil || back != m {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

// FuzzDecode: no input makes Decode panic, and every accepted message is
// complete.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(diamondMessage))
	f.Add([]byte(`{"metric": 1e400, "time": 1}`))
	f.Add([]byte(`{"metric": null}`))
	f.Add([]byte(`{"deployment_id":"d","host":"h","name":"m","metric":1e308,"time":1}`))
	f.Add([]byte(`{"deployment_id":"d","host":"h","name":"m","metric":1,"time":1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, "rk")
		if err != nil {
			if _, ok := IsMalformed(err); !ok {
				t.Fatalf("an error that is not a MalformedError: %v", err)
			}
			return
		}
		if m.Host == "" || m.DeploymentID == "" || m.Time <= 0 {
			t.Errorf("accepted an incomplete message: %+v", m)
		}
		// What is accepted is within the limits orch promises.
		if math.IsNaN(m.Value) || math.Abs(m.Value) > MaxMetricValue || m.Time > MaxTime {
			t.Errorf("accepted out of its limits: %+v", m)
		}
	})
}

// The decoder was chosen by this benchmark (go-json against encoding/json).
func BenchmarkDecode(b *testing.B) {
	data := []byte(diamondMessage)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeGoJSON: the message through go-json alone (the floor the
// pipeline's targets are multiples of).
func BenchmarkDecodeGoJSON(b *testing.B) {
	data := []byte(diamondMessage)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeGoJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInterned: the fast path as the pipeline takes it.
func BenchmarkDecodeInterned(b *testing.B) {
	data := []byte(diamondMessage)
	var in interner
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(data, "", &in); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeFastMatchesGoJSON: whatever the fast path accepts, go-json
// decodes to the same fields, and Decode's answer (metric or kind of
// error) is the one go-json's path gives.
func FuzzDecodeFastMatchesGoJSON(f *testing.F) {
	for _, s := range []string{
		diamondMessage,
		`{}`, ` { } `, `{"metric":1,"time":2,"host":"h","name":"n","deployment_id":"d"}`,
		`{"Metric":1,"time":2,"host":"h","name":"n","deployment_id":"d"}`,
		`{"metric":1,"metric":2,"time":2,"host":"h","name":"n","deployment_id":"d"}`,
		`{"metric":-0,"time":1.5e9,"host":"h\u0041","name":"n"}`,
		`{"metric":1E+2,"time":0.1e-5,"host":"hé","name":"n"}`,
		`{"metric":1e400,"time":1,"host":"h","name":"n"}`,
		`{"metric":01,"time":1,"host":"h","name":"n"}`,
		`{"metric":1.,"time":1,"host":"h","name":"n"}`,
		`{"metric":1,"time":1,"host":"h","name":"n","extra":{"a":1}}`,
		`{"metric":1,"time":1,"host":"h","name":"n","extra":true,"more":"x","n":-3.5}`,
		`{"metric":1,"time":1,"host":"h","name":"n",}`,
		`{"metric":1,"time":1,"host":"h","name":"n"} x`,
		`{"metric":null,"time":1,"host":"h","name":"n"}`,
		`{"metric":"1","time":1,"host":"h","name":"n"}`,
		`{"metric":1,"time":1,"host":1,"name":"n"}`,
		"{\"metric\":1,\t\"time\":1,\n\"host\":\"h\",\r\"name\":\"n\"}",
		`{"metric":123456789012345678901234567890,"time":1700000000.123456789,"host":"h","name":"n"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast fields
		var raw rawStrings
		in := &interner{}
		if scanFast(data, &fast, &raw, nil) {
			in.intern(&fast, &raw)
			slow, err := decodeGoJSON(data)
			if err != nil {
				t.Fatalf("the fast path accepted what go-json refuses (%v): %q", err, data)
			}
			if fast != slow {
				t.Fatalf("fast %+v, go-json %+v: %q", fast, slow, data)
			}
		}
		// By shape: learned from a Diamond message, then from data itself
		// (so data is read by its own shape the second time).
		var sh shape
		for _, learn := range [][]byte{[]byte(diamondMessage), data} {
			var lf fields
			var lraw rawStrings
			scanFast(learn, &lf, &lraw, &sh)
			var byShape fields
			var shRaw rawStrings
			if scanFast(data, &byShape, &shRaw, &sh) {
				in.intern(&byShape, &shRaw)
				slow, err := decodeGoJSON(data)
				if err != nil {
					t.Fatalf("by shape, the fast path accepted what go-json refuses (%v): %q", err, data)
				}
				if byShape != slow {
					t.Fatalf("by shape %+v, go-json %+v: %q", byShape, slow, data)
				}
			}
		}
		got, gerr := decode(data, "rk", in)
		// Again: a message of an identity now known (its strings from
		// there, its numbers checked alone) decodes the same.
		again, aerr := decode(data, "rk", in)
		ak, _ := IsMalformed(aerr)
		gk0, _ := IsMalformed(gerr)
		if (aerr == nil) != (gerr == nil) || ak != gk0 || again != got {
			t.Fatalf("decoded again %+v (%v), first %+v (%v): %q", again, aerr, got, gerr, data)
		}
		var want Metric
		var werr error
		if len(data) > MaxMessageSize {
			_, werr = Decode(data, "rk")
		} else if f, err := decodeGoJSON(data); err != nil {
			werr = err
		} else {
			want, werr = f.check("rk")
		}
		gk, _ := IsMalformed(gerr)
		wk, _ := IsMalformed(werr)
		if (gerr == nil) != (werr == nil) || gk != wk || got != want {
			t.Fatalf("decode %+v (%v), go-json %+v (%v): %q", got, gerr, want, werr, data)
		}
		// Beside the known identity of the Diamond message (data, often a
		// mutation of it, is compared with it by its layout): the same.
		in2 := &interner{}
		if _, err := decode([]byte(diamondMessage), "rk", in2); err != nil {
			t.Fatal(err)
		}
		got2, gerr2 := decode(data, "rk", in2)
		gk2, _ := IsMalformed(gerr2)
		if (gerr2 == nil) != (werr == nil) || gk2 != wk || got2 != want {
			t.Fatalf("beside a known identity, decode %+v (%v), go-json %+v (%v): %q", got2, gerr2, want, werr, data)
		}
	})
}

func BenchmarkDecodeStdlib(b *testing.B) {
	data := []byte(diamondMessage)
	b.ReportAllocs()
	for b.Loop() {
		var w wire
		if err := stdjson.Unmarshal(data, &w); err != nil {
			b.Fatal(err)
		}
	}
}

// scanPlainString reads eight bytes at a time; byte by byte through the
// plain table is what it must agree with, wherever the string ends (a
// quote, a byte that is not plain, the end of the data) within or across
// the eight.
func TestScanPlainStringMatchesBytewise(t *testing.T) {
	bytewise := func(data []byte, i int) ([]byte, int, bool) {
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
	r := rand.New(rand.NewPCG(17, 17))
	// Mostly plain bytes, and every kind that is not.
	pick := []byte("abcXYZ019 ~.-_\x7f\"\"\\\x00\x1f\x80\xc3\xff")
	for n := 0; n < 20000; n++ {
		data := make([]byte, 1+r.IntN(40))
		data[0] = '"'
		for k := 1; k < len(data); k++ {
			if r.IntN(6) == 0 {
				data[k] = pick[r.IntN(len(pick))]
			} else {
				data[k] = byte(0x20 + r.IntN(0x60))
			}
		}
		gs, gj, gok := scanPlainString(data, 0)
		ws, wj, wok := bytewise(data, 0)
		if gok != wok || gj != wj || string(gs) != string(ws) {
			t.Fatalf("%q: got %q %d %v, want %q %d %v", data, gs, gj, gok, ws, wj, wok)
		}
	}
}

// A message of the last one's layout is read by its shape; anything else
// is read key by key, and either way as go-json reads it.
// scanInt reads an integer of up to 15 digits in one pass, exactly as
// the general path reads it, and leaves every other number to it.
func TestScanIntTakesOnlyShortIntegers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"0", true}, {"-0", true}, {"45,", true}, {"1700000123}", true}, {"-17 ", true},
		{"123456789012345", true}, {"1234567890123456", false}, {"999999999999999999", false},
		{"01", false}, {"-01", false}, {"1.5", false}, {"1e5", false}, {"2E1", false},
		{"-", false}, {"", false}, {"x", false}, {"--1", false}, {"+1", false},
	} {
		v, j, ok := scanInt([]byte(tc.in), 0)
		if ok != tc.want {
			t.Errorf("%q: ok %v, want %v", tc.in, ok, tc.want)
			continue
		}
		if !ok {
			continue
		}
		fv, fj, fok := scanFloat([]byte(tc.in), 0)
		if !fok || fv != v || math.Signbit(fv) != math.Signbit(v) || fj != j {
			t.Errorf("%q: %v up to %d, the general path %v up to %d (%v)", tc.in, v, j, fv, fj, fok)
		}
	}
}

func TestShapeReadsMessagesOfTheSameLayout(t *testing.T) {
	base := `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`
	for _, tc := range []struct {
		name, body string
		byShape    bool
	}{
		{"other values", `{"node_id": "web_22", "deployment_id": "bank", "name": "memory", "metric": -1e3, "host": "10.0.0.7", "time": 1763856001.5}`, true},
		{"other spacing", `{"node_id":"web_1","deployment_id":"shop","name":"cpu","metric":73.5,"host":"h1","time":1763856000}`, false},
		{"more space after a colon", `{"node_id":  "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`, false},
		{"keys in another order", `{"deployment_id": "shop", "node_id": "web_1", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`, false},
		{"a key more", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000, "ttl": 30}`, false},
		{"a key fewer", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1"}`, false},
		{"space before the end", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000 } `, true},
		{"something after the end", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000} x`, false},
		{"a key repeated after the last", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000, "host": "h2"}`, false},
		{"a semicolon for a comma", `{"node_id": "web_1"; "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`, false},
		{"no brace", ` "node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`, false},
		{"an escape in a value", `{"node_id": "web_1", "deployment_id": "sh\u006fp", "name": "cpu", "metric": 73.5, "host": "h1", "time": 1763856000}`, false},
		{"a string for a number", `{"node_id": "web_1", "deployment_id": "shop", "name": "cpu", "metric": "73.5", "host": "h1", "time": 1763856000}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in interner
			if _, err := decode([]byte(base), "", &in); err != nil {
				t.Fatal(err)
			}
			var f fields
			var raw rawStrings
			if got := in.shape.scan([]byte(tc.body), &f, &raw); got != tc.byShape {
				t.Errorf("read by shape: %v, want %v", got, tc.byShape)
			}
			decodesAsGoJSON(t, &in, tc.body)
		})
	}
}

// A message of a known identity in the shape's layout is identified by
// its first bytes and those before its last number, and compared, not
// scanned: only the identity it is is taken, and what it decodes to is
// what go-json decodes.
func TestShapeIdentifiesMessagesOfKnownIdentities(t *testing.T) {
	msg := func(node, host, unit, service string, v, at float64) string {
		return fmt.Sprintf(`{"node_id": %q, "deployment_id": "shop", "name": "cpu", "metric": %v, "unit": %q, "host": %q, "service": %q, "time": %v}`,
			node, v, unit, host, service, at)
	}
	known := []string{
		msg("web_1", "h1", "percent", "shop.web.web_1.cpu", 1, 1e9),
		msg("web_1", "h2", "percent", "shop.web.web_1.cpu", 1, 1e9),
		msg("web_2", "h1", "percent", "shop.web.web_2.cpu", 1, 1e9),
	}
	for _, tc := range []struct {
		name, body string
		identified bool
	}{
		{"a known identity with other numbers", msg("web_1", "h2", "percent", "shop.web.web_1.cpu", 73.5, 1e9+7), true},
		{"another known identity of the same first bytes", msg("web_1", "h1", "percent", "shop.web.web_1.cpu", -2, 1e9+1), true},
		{"a number written otherwise", msg("web_2", "h1", "percent", "shop.web.web_2.cpu", 1.25e2, 1.5e9), true},
		{"another host", msg("web_1", "h3", "percent", "shop.web.web_1.cpu", 1, 1e9), false},
		{"a longer host", msg("web_1", "h22", "percent", "shop.web.web_1.cpu", 1, 1e9), false},
		{"another unit, between the numbers", msg("web_1", "h1", "bytes", "shop.web.web_1.cpu", 1, 1e9), false},
		{"another node, at the start", msg("web_3", "h1", "percent", "shop.web.web_1.cpu", 1, 1e9), false},
		{"an escape where the identity has a plain byte", strings.Replace(msg("web_1", "h1", "percent", "shop.web.web_1.cpu", 1, 1e9), `"h1"`, `"\u00681"`, 1), false},
		{"not a number where one was", strings.Replace(msg("web_1", "h1", "percent", "shop.web.web_1.cpu", 1, 1e9), `"metric": 1`, `"metric": true`, 1), false},
		{"a value out of range", msg("web_1", "h1", "percent", "shop.web.web_1.cpu", 1e300, 1e9), true},
		{"something after the end", msg("web_1", "h1", "percent", "shop.web.web_1.cpu", 1, 1e9) + " x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in interner
			ids := map[*ident]string{}
			for _, body := range known {
				var m Metric
				id, err := decodeInto([]byte(body), "", &in, &m)
				if err != nil || id == nil {
					t.Fatalf("%s: %v (identity %v)", body, err, id)
				}
				ids[id] = body
			}
			if len(in.shape.byPrefix) != len(known) {
				t.Errorf("%d chains for %d identities whose starts or hosts differ", len(in.shape.byPrefix), len(known))
			}
			var f fields
			id := in.shape.identified([]byte(tc.body), &f, in.seed)
			if (id != nil) != tc.identified {
				t.Fatalf("identified %v, want %v", id != nil, tc.identified)
			}
			if id != nil {
				if _, ok := ids[id]; !ok {
					t.Fatalf("identified an identity not kept")
				}
				if id.strs[stringIndex[fieldHost]] != hostOf(t, tc.body) {
					t.Fatalf("identified %s's identity", ids[id])
				}
			}
			decodesAsGoJSON(t, &in, tc.body)
		})
	}
	t.Run("identities beyond a chain's length are found again", func(t *testing.T) {
		// Hosts tell them apart, but neither at the start nor just
		// before the time (a long service is there): one chain.
		var in interner
		service := "shop.web.web_1.cpu." + strings.Repeat("x", 64)
		host := func(i int) string { return fmt.Sprintf("h%03d", i) }
		body := func(i int, v float64) []byte { return []byte(msg("web_1", host(i), "percent", service, v, 1e9+v)) }
		for i := range 3 * maxChain * 4 {
			var m Metric
			if _, err := decodeInto(body(i, 0), "", &in, &m); err != nil || m.Host != host(i) {
				t.Fatalf("%s: %+v (%v)", body(i, 0), m, err)
			}
		}
		for _, id := range in.shape.byPrefix {
			n := 0
			for ; id != nil && n <= 3*maxChain*4; id = id.next {
				n++
			}
			if n != maxChain*4 {
				t.Errorf("a chain of %d identities, want %d", n, maxChain*4)
			}
		}
		var f fields
		if in.shape.identified(body(0, 1), &f, in.seed) != nil {
			t.Fatal("an identity cut off its chain is identified")
		}
		var m Metric
		if _, err := decodeInto(body(0, 1), "", &in, &m); err != nil || m.Host != host(0) || m.Value != 1 {
			t.Fatalf("%+v (%v)", m, err) // found the slow way: put first
		}
		if id := in.shape.identified(body(0, 2), &f, in.seed); id == nil || id.strs[stringIndex[fieldHost]] != host(0) {
			t.Error("an identity cut off its chain is not identified after it is seen again")
		}
	})
	t.Run("a shape learned again forgets the identities of the last one", func(t *testing.T) {
		var in interner
		var m Metric
		for _, body := range []string{known[0], `{"deployment_id":"shop","node_id":"web_1","name":"cpu","metric":1,"host":"h1","time":1}`} {
			if _, err := decodeInto([]byte(body), "", &in, &m); err != nil {
				t.Fatal(err)
			}
		}
		var f fields
		if in.shape.identified([]byte(known[0]), &f, in.seed) != nil {
			t.Error("identified by a shape that is not its")
		}
	})
}

// hostOf is a message's host, by go-json.
func hostOf(t *testing.T, body string) string {
	f, err := decodeGoJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return f.Host
}

// decodesAsGoJSON checks that body decodes by in as go-json decodes it.
func decodesAsGoJSON(t *testing.T, in *interner, body string) {
	t.Helper()
	got, gerr := decode([]byte(body), "", in)
	var want Metric
	wf, werr := decodeGoJSON([]byte(body))
	if werr == nil {
		want, werr = wf.check("")
	}
	if (gerr == nil) != (werr == nil) || got != want {
		t.Errorf("decoded %+v (%v), go-json %+v (%v)", got, gerr, want, werr)
	}
}
