// oracle-argo: Argo Rollouts' own verdict on every Rollout in the input, from its own code:
//
//   - argo-lint: each document decoded as `kubectl argo rollouts lint` decodes it
//     (sigs.k8s.io/yaml UnmarshalStrict with DisallowUnknownFields, into unstructured, then
//     into v1alpha1.Rollout / corev1.Service); an unknown field is an error there.
//   - argo-validation: what the controller runs on every reconcile before anything else
//     (rollout/controller.go getRolloutValidationErrors): validation.ValidateRollout; then the
//     referenced resources gathered as getRolloutReferencedResources gathers them (Services by
//     getReferencedServices' order and NotFound error, ValidateRolloutNginx/AlbIngressesConfig,
//     ValidateRolloutVirtualServicesConfig, the real IstioController.GetReferencedVirtualServices
//     against a fake dynamic client holding the input's VirtualServices), then
//     validation.ValidateRolloutReferencedResources. Only the first error is kept by the
//     controller; all are printed in "messages".
//   - argo-reconcile: the Istio traffic-routing reconciler (rollout/trafficrouting/istio
//     NewReconciler, built as rollout/trafficrouting.go builds it when the informer has not
//     synced: nil listers, the dynamic client) driven through one canary step:
//     UpdateHash(canary, stable, experiment destinations...) then SetWeight(w, ...) then
//     SetHeaderRoute / SetMirrorRoute for each such step, against the input's objects.
//
// Which argo-rollouts version is compiled in is decided by the module file used to build
// (go.mod: v1.9.1, go.v110.mod: v1.10.x); the "argo" field of each line says which.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	log "github.com/sirupsen/logrus"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/validation"
	"github.com/argoproj/argo-rollouts/rollout/trafficrouting/istio"
	istioutil "github.com/argoproj/argo-rollouts/utils/istio"
	"github.com/argoproj/argo-rollouts/utils/record"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"
	k8srecord "k8s.io/client-go/tools/record"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/tests/oracle/input"
)

type verdict struct {
	Case      string   `json:"case"`
	File      string   `json:"file"`
	Document  int      `json:"document"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Verdict   string   `json:"verdict"`
	Source    string   `json:"source"`
	Function  string   `json:"function"`
	Message   string   `json:"message"`
	Messages  []string `json:"messages,omitempty"`
	Argo      string   `json:"argo"`
	Note      string   `json:"note,omitempty"`
}

var argoVersion = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/argoproj/argo-rollouts" {
				return m.Version
			}
		}
	}
	return "unknown"
}()

var enc = json.NewEncoder(os.Stdout)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: oracle-argo CASE... (each argument, file or folder, is one case)")
		os.Exit(2)
	}
	enc.SetEscapeHTML(false)
	// The controller code logs through logrus and klog; the verdicts are on stdout only.
	log.SetOutput(io.Discard)
	cases, err := input.ReadCases(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle-argo:", err)
		os.Exit(2)
	}
	for _, c := range cases {
		runCase(c)
	}
}

type world struct {
	services map[string]*corev1.Service // ns/name
	vsvcs    []*unstructured.Unstructured
	drs      []*unstructured.Unstructured
}

func key(ns, name string) string { return ns + "/" + name }

func runCase(c input.Case) {
	docs := input.Latest(c.Docs)
	w := world{services: map[string]*corev1.Service{}}
	emitLint := func(d input.Doc, fn string, err error) {
		_ = enc.Encode(verdict{Case: c.Name, File: d.File, Document: d.Index, Kind: d.Kind, Namespace: d.Namespace,
			Name: d.Name, Verdict: "refuse", Source: "argo-lint", Function: fn, Message: err.Error(), Argo: argoVersion})
	}
	var rollouts []input.Doc
	for _, d := range docs {
		js, err := yaml.Marshal(d.Object)
		if err != nil {
			continue
		}
		// lint.go lintResource: every document strictly into unstructured, then its kind.
		var un unstructured.Unstructured
		if err := yaml.UnmarshalStrict(js, &un, yaml.DisallowUnknownFields); err != nil {
			emitLint(d, "lint.lintResource/yaml.UnmarshalStrict(unstructured)", err)
		}
		switch d.Kind {
		case "Rollout":
			var ro v1alpha1.Rollout
			if err := yaml.UnmarshalStrict(js, &ro, yaml.DisallowUnknownFields); err != nil {
				emitLint(d, "lint.unmarshal(v1alpha1.Rollout)", err)
			}
			rollouts = append(rollouts, d)
		case "Service":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(js, &svc, yaml.DisallowUnknownFields); err != nil {
				emitLint(d, "lint.unmarshal(v1.Service)", err)
			}
			var lenient corev1.Service
			if err := unmarshalAsServed(js, &lenient); err == nil {
				lenient.Namespace = d.Namespace
				w.services[key(d.Namespace, d.Name)] = &lenient
			}
		case "VirtualService", "DestinationRule":
			u := &unstructured.Unstructured{Object: deepCopy(d.Object)}
			u.SetNamespace(d.Namespace)
			// The API server serves every version; the controller asks for
			// --istio-api-version (default v1alpha3).
			u.SetAPIVersion("networking.istio.io/v1alpha3")
			if d.Kind == "VirtualService" {
				w.vsvcs = append(w.vsvcs, u)
			} else {
				w.drs = append(w.drs, u)
			}
		}
	}
	for _, d := range rollouts {
		v := verdict{Case: c.Name, File: d.File, Document: d.Index, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, Argo: argoVersion}
		judge(&v, d, &w)
		if v.Verdict == "" {
			v.Verdict = "accept"
		}
		_ = enc.Encode(v)
	}
}

func deepCopy(m map[string]any) map[string]any {
	return runtime.DeepCopyJSON(m)
}

func refuse(v *verdict, source, fn string, errs ...error) {
	v.Verdict, v.Source, v.Function = "refuse", source, fn
	v.Message = errs[0].Error()
	if len(errs) > 1 {
		for _, e := range errs {
			v.Messages = append(v.Messages, e.Error())
		}
	}
}

func judge(v *verdict, d input.Doc, w *world) {
	defer func() {
		if p := recover(); p != nil {
			refuse(v, "argo-reconcile", "panic", fmt.Errorf("controller code panicked: %v (in %s)", p, panicSite()))
		}
	}()
	js, _ := yaml.Marshal(d.Object)
	// Case-sensitive, as the API server and client-go decode (a field spelt "canaryservice"
	// is pruned by the CRD's structural schema and never reaches the controller), not
	// encoding/json's case-insensitive matching.
	var ro v1alpha1.Rollout
	if err := unmarshalAsServed(js, &ro); err != nil {
		refuse(v, "argo-validation", "json.Unmarshal(v1alpha1.Rollout)", err)
		return
	}
	ro.Namespace = d.Namespace

	// rollout/controller.go getRolloutValidationErrors
	if errs := validation.ValidateRollout(&ro); len(errs) > 0 {
		refuse(v, "argo-validation", "validation.ValidateRollout", toErrs(errs)...)
		return
	}
	refs, fn, err := referencedResources(&ro, w)
	if err != nil {
		refuse(v, "argo-validation", fn, err)
		return
	}
	if errs := validation.ValidateRolloutReferencedResources(&ro, *refs); len(errs) > 0 {
		refuse(v, "argo-validation", "validation.ValidateRolloutReferencedResources", toErrs(errs)...)
		return
	}
	if ro.Spec.Strategy.Canary == nil || ro.Spec.Strategy.Canary.TrafficRouting == nil || ro.Spec.Strategy.Canary.TrafficRouting.Istio == nil {
		v.Note = "no Istio traffic routing: reconcile not run"
		return
	}
	reconcile(v, &ro, w)
}

func unmarshalAsServed(y []byte, v any) error {
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		return err
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(js, v)
}

func toErrs(l field.ErrorList) []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

var (
	vsGVR = istioutil.GetIstioVirtualServiceGVR()
	drGVR = istioutil.GetIstioDestinationRuleGVR()
)

func dynClient(w *world) *dynamicfake.FakeDynamicClient {
	objs := []runtime.Object{}
	for _, u := range w.vsvcs {
		objs = append(objs, u.DeepCopy())
	}
	for _, u := range w.drs {
		objs = append(objs, u.DeepCopy())
	}
	scheme := runtime.NewScheme()
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		vsGVR: "VirtualServiceList",
		drGVR: "DestinationRuleList",
	}, objs...)
}

// referencedResources follows rollout/controller.go getRolloutReferencedResources step by step.
func referencedResources(ro *v1alpha1.Rollout, w *world) (*validation.ReferencedResources, string, error) {
	refs := validation.ReferencedResources{}
	// getReferencedServices (canary strategy): stable, canary, then ping, pong.
	get := func(name string, t validation.ServiceType) error {
		if name == "" {
			return nil
		}
		svc, ok := w.services[key(ro.Namespace, name)]
		if !ok {
			nf := k8serrors.NewNotFound(schema.GroupResource{Resource: "services"}, name)
			return field.Invalid(validation.GetServiceWithTypeFieldPath(t), name, nf.Error())
		}
		refs.ServiceWithType = append(refs.ServiceWithType, validation.ServiceWithType{Service: svc.DeepCopy(), Type: t})
		return nil
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		if err := get(bg.ActiveService, validation.ActiveService); err != nil {
			return nil, "getReferencedServices", err
		}
		if err := get(bg.PreviewService, validation.PreviewService); err != nil {
			return nil, "getReferencedServices", err
		}
	} else if cs := ro.Spec.Strategy.Canary; cs != nil {
		if err := get(cs.StableService, validation.StableService); err != nil {
			return nil, "getReferencedServices", err
		}
		if err := get(cs.CanaryService, validation.CanaryService); err != nil {
			return nil, "getReferencedServices", err
		}
		if cs.PingPong != nil {
			if err := get(cs.PingPong.PingService, validation.PingService); err != nil {
				return nil, "getReferencedServices", err
			}
			if err := get(cs.PingPong.PongService, validation.PongService); err != nil {
				return nil, "getReferencedServices", err
			}
		}
	}
	// getReferencedRolloutAnalyses: not modelled (the corpus has no AnalysisTemplates).
	if err := validation.ValidateRolloutNginxIngressesConfig(ro); err != nil {
		return nil, "validation.ValidateRolloutNginxIngressesConfig", err
	}
	if err := validation.ValidateRolloutAlbIngressesConfig(ro); err != nil {
		return nil, "validation.ValidateRolloutAlbIngressesConfig", err
	}
	// getReferencedIngresses: not modelled (not Istio).
	if err := validation.ValidateRolloutVirtualServicesConfig(ro); err != nil {
		return nil, "validation.ValidateRolloutVirtualServicesConfig", err
	}
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{}, &unstructured.Unstructured{}, 0, cache.Indexers{})
	ctl := &istio.IstioController{IstioControllerConfig: istio.IstioControllerConfig{
		DynamicClientSet:       dynClient(w),
		VirtualServiceInformer: informer, // never started: HasSynced() is false, so a GET is made
	}}
	vs, err := ctl.GetReferencedVirtualServices(ro)
	if err != nil {
		return nil, "IstioController.GetReferencedVirtualServices", err
	}
	refs.VirtualServices = *vs
	return &refs, "", nil
}

// reconcile drives the Istio reconciler through one canary step, as
// rollout/trafficrouting.go reconcileTrafficRouting does: UpdateHash, SetWeight, then the
// header / mirror route of a managed-route step.
func reconcile(v *verdict, ro *v1alpha1.Rollout, w *world) {
	rec := nopRecorder{}
	dyn := dynClient(w)
	r := istio.NewReconciler(ro, dyn, rec, nil, nil, nil)
	var extra []v1alpha1.WeightDestination
	if ro.Status.Canary.Weights != nil {
		extra = ro.Status.Canary.Weights.Additional
	}
	weight := int32(10)
	for _, s := range ro.Spec.Strategy.Canary.Steps {
		if s.SetWeight != nil {
			weight = *s.SetWeight
			break
		}
	}
	if err := r.UpdateHash("canaryhash", "stablehash", extra...); err != nil {
		refuse(v, "argo-reconcile", "Reconciler.UpdateHash", err)
		return
	}
	if err := r.SetWeight(weight, extra...); err != nil {
		refuse(v, "argo-reconcile", "Reconciler.SetWeight", err)
		return
	}
	for _, s := range ro.Spec.Strategy.Canary.Steps {
		if s.SetHeaderRoute != nil {
			if err := r.SetHeaderRoute(s.SetHeaderRoute); err != nil {
				refuse(v, "argo-reconcile", "Reconciler.SetHeaderRoute", err)
				return
			}
		}
		if s.SetMirrorRoute != nil {
			if err := r.SetMirrorRoute(s.SetMirrorRoute); err != nil {
				refuse(v, "argo-reconcile", "Reconciler.SetMirrorRoute", err)
				return
			}
		}
	}
}

// nopRecorder drops the controller's events (record.NewFakeEventRecorder starts notification
// informers and costs ~25 ms a case; events play no part in a verdict).
type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, record.EventOptions, string, ...any) {}
func (nopRecorder) Warnf(runtime.Object, record.EventOptions, string, ...any)  {}
func (nopRecorder) K8sRecorder() k8srecord.EventRecorder                       { return k8srecord.NewFakeRecorder(0) }

// panicSite names the innermost argo-rollouts function on the panicking stack.
func panicSite() string {
	for _, l := range strings.Split(string(debug.Stack()), "\n") {
		if strings.Contains(l, "argoproj/argo-rollouts/") && !strings.HasPrefix(l, "\t") {
			if i := strings.LastIndex(l, "/"); i >= 0 {
				l = l[i+1:]
			}
			if j := strings.Index(l, "("); j >= 0 {
				l = l[:j]
			}
			return l
		}
	}
	return "?"
}
