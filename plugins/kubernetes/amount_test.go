package kubernetes

import "testing"

func TestAmount(t *testing.T) {
	tests := []struct {
		amount  string
		current int32
		limits  Limits
		want    int32
		wantErr bool
	}{
		{"+1", 2, Limits{}, 3, false},
		{"-1", 2, Limits{}, 1, false},
		{"+0", 2, Limits{}, 2, false},
		{"5", 2, Limits{}, 5, false},
		{"0", 2, Limits{}, 0, false},
		{"-3", 2, Limits{}, 0, false},
		{"+1", 4, Limits{Max: 4}, 4, false},
		{"-1", 1, Limits{Min: 1}, 1, false},
		{"10", 2, Limits{Min: 1, Max: 6}, 6, false},
		{"+2", 0, Limits{Min: 1, Max: 6}, 2, false},
		{"1.5", 0, Limits{}, 0, true},
		{"", 0, Limits{}, 0, true},
		{"+", 0, Limits{}, 0, true},
		{"x; rm -rf /", 0, Limits{}, 0, true},
		{"$(id)", 0, Limits{}, 0, true},
		{"9999999", 0, Limits{}, 0, true},
		// Proportional: ceil(current x ratio), as the HPA.
		{"*1.5", 2, Limits{}, 3, false},
		{"*1.6666666666666667", 3, Limits{}, 5, false},
		{"*0.56", 5, Limits{}, 3, false},
		{"*2", 3, Limits{Max: 5}, 5, false},
		{"*0.1", 3, Limits{Min: 2}, 2, false},
		{"*3", 0, Limits{}, 0, false}, // nothing to be proportional to
		{"*1e0", 4, Limits{}, 4, false},
		{"*0", 2, Limits{}, 0, true},
		{"*1001", 2, Limits{}, 0, true},
		{"*-1", 2, Limits{}, 0, true},
		{"*1.5; id", 2, Limits{}, 0, true},
	}
	for _, tt := range tests {
		a, err := ParseAmount(tt.amount)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAmount(%q) err = %v", tt.amount, err)
			continue
		}
		if err == nil {
			if got := a.Apply(tt.current, tt.limits); got != tt.want {
				t.Errorf("%q from %d with %+v = %d, want %d", tt.amount, tt.current, tt.limits, got, tt.want)
			}
		}
	}
}
