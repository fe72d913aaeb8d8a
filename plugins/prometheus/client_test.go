package prometheus

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestQueryReadsVectorsScalarsAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		answer  string
		want    []Sample
		wantErr string
	}{
		{"a vector: a sample per series", 200,
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a:9100"},"value":[1700000000.5,"12.5"]},{"metric":{"instance":"b:9100"},"value":[1700000000.5,"NaN"]}]}}`,
			[]Sample{{Labels: map[string]string{"instance": "a:9100"}, Value: 12.5, Time: 1700000000.5}, {Labels: map[string]string{"instance": "b:9100"}, Value: nan(), Time: 1700000000.5}}, ""},
		{"a scalar: one sample", 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}`,
			[]Sample{{Value: 3, Time: 1700000000}}, ""},
		{"an empty vector: no samples, no error", 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`, []Sample{}, ""},
		{"a bad query: Prometheus's error", 400, `{"status":"error","errorType":"bad_data","error":"parse error"}`, nil, "bad_data: parse error"},
		{"a matrix: refused", 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, nil, "gives a matrix"},
		{"not the API: refused", 502, `<html>bad gateway</html>`, nil, "HTTP 502, not an API answer"},
		{"a value not a number", 200, `{"status":"success","data":{"resultType":"scalar","result":[1,"x"]}}`, nil, `"x" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/query" || r.FormValue("query") != "up" || r.FormValue("time") != "1700000000.250" {
					t.Errorf("asked %s %v", r.URL.Path, r.Form)
				}
				if got := r.Header.Get("Authorization"); got != "Bearer tok" {
					t.Errorf("Authorization %q", got)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			c := &Client{URL: srv.URL + "/", Token: func() (string, error) { return "tok", nil }}
			got, err := c.Query(context.Background(), "up", time.UnixMilli(1700000000250))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d samples, want %d", len(got), len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Labels["instance"] != w.Labels["instance"] || g.Time != w.Time || g.Finite() != w.Finite() || g.Finite() && g.Value != w.Value {
					t.Errorf("sample %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func TestSampleHostNamesDistinctSeries(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"instance": "a:9100", "job": "app"}, "a:9100"},
		{nil, "load"},
		{map[string]string{"pod": "web-1", "zone": "b"}, `load{pod="web-1",zone="b"}`},
	} {
		if got := (Sample{Labels: tc.labels}).Host("instance", "load"); got != tc.want {
			t.Errorf("Host of %v = %q, want %q", tc.labels, got, tc.want)
		}
	}
}
