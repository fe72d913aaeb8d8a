package policies

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

// collectd's write_amqp plugin publishes value lists as JSON (an array of
// them) or as Graphite lines, next to Diamond's messages on orch's
// exchange. A value becomes a metric (docs/metrics.md):
//
//   - deployment and node: the routing key, DEPLOYMENT.NODE (write_amqp's
//     RoutingKey; a node name has no dot, so the last one splits them);
//   - host: the value list's host (the machine), also the metric's node_id;
//   - name: the plugin; path: [plugin_instance.]type[.type_instance], and
//     .dsname when the type has several data sources: the Graphite path
//     after the host, with GraphiteSeparateInstances, so both formats give
//     the same metric;
//   - service: DEPLOYMENT.NODE.HOST.NAME.PATH, as Diamond's.
//
// A value collectd could not compute (null, nan) is skipped and counted as
// malformed ("value"); so is one out of orch's range.

// collectdValueList is one value list of write_amqp's JSON format.
type collectdValueList struct {
	Values         []*float64 `json:"values"`
	DSTypes        []string   `json:"dstypes"`
	DSNames        []string   `json:"dsnames"`
	Time           float64    `json:"time"`
	Interval       float64    `json:"interval"`
	Host           string     `json:"host"`
	Plugin         string     `json:"plugin"`
	PluginInstance string     `json:"plugin_instance"`
	Type           string     `json:"type"`
	TypeInstance   string     `json:"type_instance"`
}

// collectdTarget splits a collectd message's routing key into its
// deployment and node.
func collectdTarget(routingKey string) (deployment, node string, err error) {
	i := strings.LastIndexByte(routingKey, '.')
	if i <= 0 || i == len(routingKey)-1 {
		return "", "", &MalformedError{Kind: "missing", Detail: fmt.Sprintf(
			"collectd message with routing key %q: want DEPLOYMENT.NODE (RoutingKey in write_amqp's Publish block)", routingKey)}
	}
	return routingKey[:i], routingKey[i+1:], nil
}

// RoutedTo is the deployment a message's routing key sends it to:
// Diamond's key is the deployment, collectd's DEPLOYMENT.NODE.
func RoutedTo(body []byte, routingKey string) string {
	if first(body) == '{' {
		return routingKey
	}
	dep, _, err := collectdTarget(routingKey)
	if err != nil {
		return routingKey
	}
	return dep
}

// DecodeAll decodes a message of any format orch reads: a Diamond object,
// a collectd JSON array or collectd Graphite lines. Values it skips (not
// computed, out of range) are counted in skipped; err is set only when
// the message as a whole is refused.
func DecodeAll(data []byte, routingKey string, out []Metric) (ms []Metric, skipped int, err error) {
	return decodeAll(data, routingKey, out, nil)
}

func decodeAll(data []byte, routingKey string, out []Metric, in *interner) ([]Metric, int, error) {
	if len(data) > MaxMessageSize {
		return out, 0, &MalformedError{Kind: "too-large", Detail: fmt.Sprintf("%d bytes, at most %d", len(data), MaxMessageSize)}
	}
	switch first(data) {
	case '{':
		m, err := decode(data, routingKey, in)
		if err != nil {
			return out, 0, err
		}
		return append(out, m), 0, nil
	case '[':
		return decodeCollectdJSON(data, routingKey, out)
	default:
		return decodeGraphite(data, routingKey, out)
	}
}

func first(data []byte) byte {
	if i := skipSpace(data, 0); i < len(data) {
		return data[i]
	}
	return 0
}

func decodeCollectdJSON(data []byte, routingKey string, out []Metric) ([]Metric, int, error) {
	var vls []collectdValueList
	if err := json.Unmarshal(data, &vls); err != nil {
		return out, 0, &MalformedError{Kind: "json", Detail: "collectd JSON: " + err.Error()}
	}
	dep, node, err := collectdTarget(routingKey)
	if err != nil {
		return out, 0, err
	}
	if len(vls) == 0 {
		return out, 0, &MalformedError{Kind: "missing", Detail: "collectd JSON without a value list"}
	}
	skipped, n := 0, len(out)
	for i, vl := range vls {
		if vl.Host == "" || vl.Plugin == "" || vl.Type == "" || len(vl.Values) == 0 {
			return out[:n], 0, &MalformedError{Kind: "missing", Detail: fmt.Sprintf("collectd value list %d: want host, plugin, type and values", i)}
		}
		if len(vl.DSNames) != len(vl.Values) {
			return out[:n], 0, &MalformedError{Kind: "missing", Detail: fmt.Sprintf("collectd value list %d: %d values, %d dsnames", i, len(vl.Values), len(vl.DSNames))}
		}
		if vl.Time <= 0 || vl.Time > MaxTime {
			return out[:n], 0, &MalformedError{Kind: "value", Detail: fmt.Sprintf("collectd value list %d: time must be epoch seconds", i)}
		}
		parts := make([]string, 0, 4)
		if vl.PluginInstance != "" {
			parts = append(parts, vl.PluginInstance)
		}
		parts = append(parts, vl.Type)
		if vl.TypeInstance != "" {
			parts = append(parts, vl.TypeInstance)
		}
		for j, v := range vl.Values {
			if v == nil || valueProblem(*v) != nil {
				skipped++
				continue
			}
			path := strings.Join(parts, ".")
			if len(vl.Values) > 1 {
				path += "." + vl.DSNames[j]
			}
			typ := ""
			if j < len(vl.DSTypes) {
				typ = strings.ToUpper(vl.DSTypes[j])
			}
			out = append(out, collectdMetric(dep, node, vl.Host, vl.Plugin, path, *v, vl.Time, typ))
		}
	}
	return out, skipped, nil
}

// decodeGraphite decodes write_amqp's Graphite lines, "PATH VALUE TIME",
// PATH being HOST.PLUGIN[.PLUGIN_INSTANCE].TYPE[.TYPE_INSTANCE][.DS]
// (GraphiteSeparateInstances, no GraphitePrefix; collectd escapes the
// dots of a host name).
func decodeGraphite(data []byte, routingKey string, out []Metric) ([]Metric, int, error) {
	dep, node, err := collectdTarget(routingKey)
	if err != nil {
		return out, 0, err
	}
	skipped, n := 0, len(out)
	for no, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) != 3 {
			return out[:n], 0, &MalformedError{Kind: "json", Detail: fmt.Sprintf("line %d: want Graphite's PATH VALUE TIME (or a Diamond or collectd JSON message)", no+1)}
		}
		path := strings.Split(f[0], ".")
		if len(path) < 3 || slices.Contains(path, "") {
			return out[:n], 0, &MalformedError{Kind: "missing", Detail: fmt.Sprintf("line %d: path %q: want HOST.PLUGIN.TYPE at least (GraphiteSeparateInstances true, no GraphitePrefix)", no+1, f[0])}
		}
		ts, err := strconv.ParseFloat(f[2], 64)
		if err != nil || ts <= 0 || ts > MaxTime {
			return out[:n], 0, &MalformedError{Kind: "value", Detail: fmt.Sprintf("line %d: time %q must be epoch seconds", no+1, f[2])}
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			if strings.EqualFold(f[1], "nan") {
				skipped++
				continue
			}
			return out[:n], 0, &MalformedError{Kind: "type", Detail: fmt.Sprintf("line %d: value %q is not a number", no+1, f[1])}
		}
		if math.IsNaN(v) || valueProblem(v) != nil {
			skipped++
			continue
		}
		out = append(out, collectdMetric(dep, node, path[0], path[1], strings.Join(path[2:], "."), v, ts, ""))
	}
	if len(out) == n && skipped == 0 {
		return out, 0, &MalformedError{Kind: "missing", Detail: "no Graphite line"}
	}
	return out, skipped, nil
}

func collectdMetric(dep, node, host, name, path string, v, t float64, typ string) Metric {
	return Metric{DeploymentID: dep, NodeName: node, NodeID: host, Host: host, Name: name, Path: path, Value: v, Time: t, Type: typ,
		Service: dep + "." + node + "." + host + "." + name + "." + path}
}
