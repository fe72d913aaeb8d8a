package kubernetes

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A controller updating the copy between burst's read and write (a
// Deployment's status) costs a retry, not a failed burst.
func TestApplyRetriesAConflict(t *testing.T) {
	existing := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ResourceVersion: "1",
		Labels: map[string]string{LabelManagedBy: ManagedByOrch}}}
	client := fake.NewClientset(existing)
	conflicts := 0
	client.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web", nil)
		}
		return false, nil, nil
	})
	copied := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{LabelManagedBy: ManagedByOrch, "v": "2"}}}
	err := apply(context.Background(), client.AppsV1().Deployments("ns"), copied, func(old, new *appsv1.Deployment) { new.ResourceVersion = old.ResourceVersion })
	if err != nil {
		t.Fatalf("apply after one conflict: %v", err)
	}
	got, _ := client.AppsV1().Deployments("ns").Get(context.Background(), "web", metav1.GetOptions{})
	if conflicts != 1 || got.Labels["v"] != "2" {
		t.Errorf("conflicts %d, labels %v", conflicts, got.Labels)
	}
}
