package kubernetes

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
)

// Amount is kube_scale's `amount`: "2" sets the replica count, "+1" and
// "-1" change it, "*1.5" sets it to ceil(current x 1.5), as the HPA's
// replica calculator (orch.target_value's values.ratio).
type Amount struct {
	Relative bool
	N        int32
	// Ratio, when above zero, is the proportional amount.
	Ratio float64
}

var (
	amountPattern = regexp.MustCompile(`^([+-]?)([0-9]{1,6})$`)
	ratioPattern  = regexp.MustCompile(`^\*([0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?)$`)
)

// maxRatio bounds a proportional amount (a ratio that large is a unit
// mistake, not a load).
const maxRatio = 1000

// ParseAmount reads "2", "+1", "-1", "+0" or "*1.25".
func ParseAmount(s string) (Amount, error) {
	if m := ratioPattern.FindStringSubmatch(s); m != nil {
		r, err := strconv.ParseFloat(m[1], 64)
		if err != nil || r <= 0 || r > maxRatio {
			return Amount{}, fmt.Errorf("amount %q: a ratio is above 0 and at most %d", s, maxRatio)
		}
		return Amount{Ratio: r}, nil
	}
	m := amountPattern.FindStringSubmatch(s)
	if m == nil {
		return Amount{}, fmt.Errorf("amount %q: want a replica count (\"3\"), a change (\"+1\", \"-2\") or a ratio of the current count (\"*1.5\")", s)
	}
	n, _ := strconv.Atoi(m[2])
	a := Amount{Relative: m[1] != "", N: int32(n)}
	if m[1] == "-" {
		a.N = -a.N
	}
	return a, nil
}

// Limits bound the replica count; Max 0 means no upper bound.
type Limits struct {
	Min, Max int32
}

// Apply returns the replica count after applying a to current, clamped to
// the limits (and never below zero).
func (a Amount) Apply(current int32, l Limits) int32 {
	n := a.N
	switch {
	case a.Ratio > 0:
		// The HPA's ceil(current x ratio); at zero replicas there is
		// nothing to be proportional to (the HPA does not scale from 0).
		if current == 0 {
			return 0
		}
		n = int32(min(math.Ceil(float64(current)*a.Ratio), math.MaxInt32/2))
	case a.Relative:
		n = current + a.N
	}
	if n < l.Min {
		n = l.Min
	}
	if l.Max > 0 && n > l.Max {
		n = l.Max
	}
	if n < 0 {
		n = 0
	}
	return n
}

// Describe says what the amount does: "by +1", "to 2 replicas".
func (a Amount) Describe() string {
	if a.Ratio > 0 {
		return fmt.Sprintf("to ceil(current x %g)", a.Ratio)
	}
	if a.Relative {
		return "by " + a.String()
	}
	return fmt.Sprintf("to %d replicas", a.N)
}

func (a Amount) String() string {
	if a.Ratio > 0 {
		return "*" + strconv.FormatFloat(a.Ratio, 'g', -1, 64)
	}
	if a.Relative && a.N >= 0 {
		return fmt.Sprintf("+%d", a.N)
	}
	return strconv.Itoa(int(a.N))
}
