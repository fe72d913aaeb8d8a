package kubernetes

import (
	"fmt"
	"regexp"
	"strconv"
)

// Amount is kube_scale's `amount`: "2" sets the replica count, "+1" and
// "-1" change it.
type Amount struct {
	Relative bool
	N        int32
}

var amountPattern = regexp.MustCompile(`^([+-]?)([0-9]{1,6})$`)

// ParseAmount reads "2", "+1", "-1" or "+0".
func ParseAmount(s string) (Amount, error) {
	m := amountPattern.FindStringSubmatch(s)
	if m == nil {
		return Amount{}, fmt.Errorf("amount %q: want a replica count (\"3\") or a change (\"+1\", \"-2\")", s)
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
	if a.Relative {
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
	if a.Relative {
		return "by " + a.String()
	}
	return fmt.Sprintf("to %d replicas", a.N)
}

func (a Amount) String() string {
	if a.Relative && a.N >= 0 {
		return fmt.Sprintf("+%d", a.N)
	}
	return strconv.Itoa(int(a.N))
}
