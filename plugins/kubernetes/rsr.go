package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ResourceSyncRules is the cluster registry's (Calisti's) replication
// resource: rules on the source cluster that the registry's controller
// follows to copy objects into the peers.
var ResourceSyncRules = schema.GroupVersionResource{Group: "clusterregistry.k8s.cisco.com", Version: "v1alpha1", Resource: "resourcesyncrules"}

// AnnotationSynced lists, on a rule orch wrote, the objects it syncs
// ("Kind/name" in the rule's namespace), so reconcile deletes exactly those
// copies from the target.
const AnnotationSynced = "orch.io/synced"

// syncRule is one ResourceSyncRule of a burst.
func (b *Burst) syncRule(kind, group, version string, match []any, synced []string) *unstructured.Unstructured {
	data, _ := json.Marshal(synced)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "clusterregistry.k8s.cisco.com/v1alpha1",
		"kind":       "ResourceSyncRule",
		"metadata": map[string]any{
			"name":        fmt.Sprintf("orch-burst-%s-%s-%s", b.Namespace, b.App, strings.ToLower(kind)),
			"labels":      map[string]any{LabelManagedBy: ManagedByOrch, LabelBurstApp: b.App},
			"annotations": map[string]any{AnnotationSynced: string(data), "orch.io/namespace": b.Namespace},
		},
		"spec": map[string]any{
			"groupVersionKind": map[string]any{"group": group, "version": version, "kind": kind},
			"rules":            []any{map[string]any{"match": match}},
		},
	}}
}

// syncRules are the rules replicating the app's Deployments (by label) and
// the ConfigMaps and Secrets they use (by name).
func (b *Burst) syncRules(names map[string][]string) []*unstructured.Unstructured {
	rules := []*unstructured.Unstructured{b.syncRule("Deployment", "apps", "v1",
		[]any{map[string]any{"labels": []any{map[string]any{"matchLabels": map[string]any{"app": b.App}}}, "namespaces": []any{b.Namespace}}},
		prefixed("Deployment", names["Deployment"]))}
	for _, kind := range []string{"ConfigMap", "Secret"} {
		if len(names[kind]) == 0 {
			continue
		}
		var match []any
		for _, n := range names[kind] {
			match = append(match, map[string]any{"objectKey": map[string]any{"name": n, "namespace": b.Namespace}})
		}
		rules = append(rules, b.syncRule(kind, "", "v1", match, prefixed(kind, names[kind])))
	}
	return rules
}

func prefixed(kind string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = kind + "/" + n
	}
	return out
}

func (b *Burst) applySyncRules(ctx context.Context, names map[string][]string) error {
	res := b.SourceDynamic.Resource(ResourceSyncRules)
	for _, rule := range b.syncRules(names) {
		if err := applyUnstructured(ctx, res, rule); err != nil {
			return fmt.Errorf("resource sync rule %s: %w", rule.GetName(), err)
		}
		b.logf("resource sync rule %s written on %s", rule.GetName(), b.SourceName)
	}
	return nil
}

// deleteSyncRules removes the burst's rules from the source and the copies
// they made from the target.
func (b *Burst) deleteSyncRules(ctx context.Context) error {
	res := b.SourceDynamic.Resource(ResourceSyncRules)
	list, err := res.List(ctx, metav1.ListOptions{LabelSelector: fmt.Sprintf("%s=%s,%s=%s", LabelManagedBy, ManagedByOrch, LabelBurstApp, b.App)})
	if err != nil {
		return fmt.Errorf("list resource sync rules: %w", err)
	}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	for _, rule := range list.Items {
		if rule.GetAnnotations()["orch.io/namespace"] != b.Namespace {
			continue
		}
		if err := res.Delete(ctx, rule.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete resource sync rule %s: %w", rule.GetName(), err)
		}
		var synced []string
		_ = json.Unmarshal([]byte(rule.GetAnnotations()[AnnotationSynced]), &synced)
		for _, s := range synced {
			kind, name, _ := strings.Cut(s, "/")
			var err error
			switch kind {
			case "Deployment":
				err = b.Target.AppsV1().Deployments(b.Namespace).Delete(ctx, name, del)
			case "ConfigMap":
				err = b.Target.CoreV1().ConfigMaps(b.Namespace).Delete(ctx, name, del)
			case "Secret":
				err = b.Target.CoreV1().Secrets(b.Namespace).Delete(ctx, name, del)
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete synced %s %s: %w", kind, name, err)
			}
		}
		b.logf("resource sync rule %s and its %d copies removed", rule.GetName(), len(synced))
	}
	return nil
}
